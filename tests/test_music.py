"""The music plugin: keys and meters, the ABC parser, repair, MIDI, the synthesiser,
fluidsynth rendering and the ``compose`` handler's retry-and-repair logic.

The handler is driven here by :class:`ScriptedKernel`, a test double that
plays back fixed model outputs; the end-to-end test on the real default
model runs against a real kernel elsewhere.
"""

from __future__ import annotations

import asyncio
import struct
import wave
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from llmos.plugins import music
from llmos.plugins.manager import collect, plugin_manager
from llmos.plugins.music import ComposeParams, ComposeResult, compose
from llmos.plugins.music.abc import AbcError, bar_length, format_tune, parse_body, parse_tune
from llmos.plugins.music.command import compose_command
from llmos.plugins.music.midi import TICKS_PER_BEAT, midi_bytes, ticks, varlen
from llmos.plugins.music.render import fluidsynth_available, wav_rms, write_tune
from llmos.plugins.music.repair import TuneSpec, accept, repair, title
from llmos.plugins.music.score import score_of
from llmos.plugins.music.synth import SAMPLE_RATE, synthesise
from llmos.plugins.music.theory import parse_key, parse_meter
from llmos.syscalls.errors import InvalidArgument

T = TypeVar("T")

KEYS = ["C", "G", "D", "A", "E", "B", "F#", "F", "Bb", "Eb", "Ab", "Am", "Em", "F#m", "Dm", "Gm"]
METERS = ["4/4", "3/4", "2/4", "6/8", "9/8", "2/2", "C", "5/4", "12/8"]
ABC_ALPHABET = "ABCDEFGabcdefgz^_=',/|:[]0123456789 \nxK%MT"


def bars_of(abc: str, spec: TuneSpec) -> list[Fraction]:
    """The length of every bar of ``abc``, after checking the header matches ``spec``."""
    tune = parse_tune(abc)
    assert tune.fields == spec.fields
    assert tune.bar_units == spec.bar_units
    return [bar_length(bar) for bar in tune.bars]


# -- keys and meters -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fifths"), [("C", 0), ("Am", 0), ("G", 1), ("F#m", 3), ("Bb", -2), ("Ebm", -6)]
)
def test_key_signature_counts_fifths(name: str, fifths: int) -> None:
    key = parse_key(name)
    assert key.fifths == fifths
    assert sum(key.signature.values()) == fifths


@pytest.mark.parametrize("name", ["H", "c", "Cmaj", "A#b", "", "G#", "Fbm", "C m"])
def test_bad_keys_are_invalid_arguments(name: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_key(name)


def test_scale_is_spelled_from_the_tonic() -> None:
    assert parse_key("Am").scale[:8] == ["A", "B", "c", "d", "e", "f", "g", "a"]
    assert parse_key("C").scale[7:9] == ["c", "d"]


@pytest.mark.parametrize(("meter", "units"), [("4/4", 8), ("3/4", 6), ("6/8", 6), ("C|", 8)])
def test_meter_bar_length_in_eighths(meter: str, units: int) -> None:
    assert parse_meter(meter) == units


@pytest.mark.parametrize("meter", ["4", "4/3", "0/4", "13/8", "3/16", "x/y"])
def test_unsupported_meters_are_refused(meter: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_meter(meter)


# -- the parser ------------------------------------------------------------

TUNE = """X:1
T:Test
M:3/4
L:1/8
Q:1/4=90
K:G
% a comment
|: G2 B/ d/ g2 B | [ceg]2 ^f z3 | _B,3/2 c'/2 =F// e// d/ d3 | e6 :|
"""


def test_parser_reads_lengths_octaves_accidentals_and_chords() -> None:
    tune = parse_tune(TUNE)
    assert tune.fields["K"] == "G" and tune.tempo == 90
    assert [bar_length(bar) for bar in tune.bars] == [6, 6, 6, 6]
    chord, sharp_f, rest = tune.bars[1]
    assert (chord.letter, chord.octave, chord.length) == ("C", 1, 2)
    assert sharp_f.accidental == "^" and rest.is_rest
    low_b, high_c = tune.bars[2][:2]
    assert (low_b.octave, low_b.length) == (-1, Fraction(3, 2))
    assert (high_c.octave, high_c.length) == (2, Fraction(1, 2))


@pytest.mark.parametrize(
    "body", ["C D E >F", "C-D", "C0", "(CDE)", "C |1 D", "[K:G] C", "[C x]", "z'", "H"]
)
def test_parser_refuses_what_is_outside_the_subset(body: str) -> None:
    with pytest.raises(AbcError):
        parse_body(body)


@pytest.mark.parametrize(("q", "tempo"), [("1/4=90", 90), ("3/8=40", 60), ("1/2=60", 120)])
def test_tempo_is_counted_in_quarter_notes(q: str, tempo: int) -> None:
    assert parse_tune(f"X:1\nM:4/4\nL:1/8\nQ:{q}\nK:C\nC8|").tempo == tempo


def test_parser_requires_the_header() -> None:
    with pytest.raises(AbcError, match="lacks"):
        parse_tune("X:1\nK:C\nC D E F|")
    with pytest.raises(AbcError):
        parse_tune("X:1\nM:4/4\nL:1/8\nK:H\nC|")
    with pytest.raises(AbcError):
        parse_tune("C D E F|\nX:1\nM:4/4\nL:1/8\nK:C")
    with pytest.raises(AbcError):
        parse_tune("X:1\nM:4/4\nL:1/8\nQ:fast\nK:C\nC8|")


def test_format_then_parse_is_the_identity() -> None:
    tune = parse_tune(TUNE)
    again = parse_tune(format_tune(tune.fields, tune.bars))
    assert again == tune


# -- accept and repair -----------------------------------------------------


def test_a_complete_answer_is_accepted_as_written() -> None:
    spec = TuneSpec("waltz", 2, "D", "3/4", 100)
    abc = accept("Here you are:\n```\nD2 F2 A2 | d6 |]\n```", spec)
    assert abc is not None
    assert abc.splitlines()[-1] == "D2 F2 A2 | d6 |]"


@pytest.mark.parametrize(
    "text", ["D2 F2 A2 | d6 | A6 |]", "D2 F2 A2 | d4 |]", "z6 | d6", "hello, world"]
)
def test_an_incomplete_answer_is_not_accepted(text: str) -> None:
    assert accept(text, TuneSpec("waltz", 2, "D", "3/4", 100)) is None


def test_repair_keeps_the_models_notes_in_order() -> None:
    spec = TuneSpec("march", 3, "C", "4/4", 120)
    abc = repair("Sure! C D E F G A B c | c8 | junk^ d2 e2", spec)
    tune = parse_tune(abc)
    assert " ".join(map(str, tune.bars[0])) == "C D E F G A B c"
    assert " ".join(map(str, tune.bars[1])) == "c8"
    assert [str(n) for n in tune.bars[2][:2]] == ["d2", "e2"]
    assert bars_of(abc, spec) == [8, 8, 8]


def test_repair_shortens_a_note_that_crosses_the_bar_line_and_ends_on_the_tonic() -> None:
    spec = TuneSpec("air", 2, "Am", "3/4", 80)
    tune = parse_tune(repair("c4 e4", spec, seed=3))
    assert [str(n) for n in tune.bars[0]] == ["c4", "e2"]
    assert tune.bars[-1][-1].letter == "A"


def test_a_bar_of_rests_gets_a_note() -> None:
    spec = TuneSpec("silence", 2, "C", "2/4", 60)
    tune = parse_tune(repair("z4 | z4 |", spec))
    assert all(any(not note.is_rest for note in bar) for bar in tune.bars)


def test_title_is_one_short_line() -> None:
    assert title("  a\nlong %\x00 tune ") == "a long tune"
    assert len(title("x" * 500)) == 60
    assert title("") == "Untitled"


@settings(max_examples=150, deadline=None)
@given(
    text=st.one_of(st.text(), st.text(alphabet=ABC_ALPHABET, max_size=300)),
    num_bars=st.integers(1, 64),
    key=st.sampled_from(KEYS),
    meter=st.sampled_from(METERS),
    description=st.text(max_size=80),
    seed=st.integers(0, 2**31),
)
def test_repair_of_any_text_parses_with_exactly_the_bars_asked(
    text: str, num_bars: int, key: str, meter: str, description: str, seed: int
) -> None:
    spec = TuneSpec(description, num_bars, key, meter, 120)
    abc = repair(text, spec, seed=seed)
    assert bars_of(abc, spec) == [spec.bar_units] * num_bars
    score = score_of(parse_tune(abc))
    assert score.num_beats == num_bars * spec.bar_units / 2
    assert score.events, "a repaired tune always sounds"


# -- pitches, MIDI ---------------------------------------------------------


def test_pitches_follow_the_key_signature_and_bar_accidentals() -> None:
    tune = parse_tune("X:1\nM:4/4\nL:1/8\nK:G\nF =F F C, c' z ^^C _B | F __E E4 |")
    pitches = [event.pitch for event in score_of(tune).events]
    assert pitches == [66, 65, 65, 48, 84, 62, 70, 66, 62, 62]


def midi_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, checking each declared length against the bytes."""
    chunks, pos = [], 0
    while pos < len(data):
        kind, length = struct.unpack(">4sI", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        assert len(body) == length
        chunks.append((kind, body))
        pos += 8 + length
    return chunks


def read_varlen(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    while True:
        value = (value << 7) | (data[pos] & 0x7F)
        pos += 1
        if not data[pos - 1] & 0x80:
            return value, pos


def track_events(track: bytes) -> list[tuple[int, int, bytes]]:
    """(absolute tick, status byte, data) of every event of a track we wrote."""
    events, pos, now = [], 0, 0
    while pos < len(track):
        delta, pos = read_varlen(track, pos)
        now += delta
        status = track[pos]
        if status == 0xFF:  # meta event: type, length, data
            size = 3 + track[pos + 2]
        elif status & 0xF0 == 0xC0:  # program change
            size = 2
        else:  # note on or off
            size = 3
        events.append((now, status, track[pos + 1 : pos + size]))
        pos += size
    return events


@pytest.mark.parametrize(
    ("value", "encoded"), [(0, b"\x00"), (0x7F, b"\x7f"), (0x80, b"\x81\x00"), (480, b"\x83\x60")]
)
def test_varlen_matches_the_midi_spec(value: int, encoded: bytes) -> None:
    assert varlen(value) == encoded


def test_midi_file_has_one_track_with_tempo_and_every_note() -> None:
    spec = TuneSpec("midi", 4, "Eb", "4/4", 150)
    score = score_of(parse_tune(repair("E2 z2 G2 B2 e8", spec, seed=1)))
    (header_kind, header), (track_kind, track) = midi_chunks(midi_bytes(score))
    assert header_kind == b"MThd" and track_kind == b"MTrk"
    assert struct.unpack(">HHH", header) == (0, 1, TICKS_PER_BEAT)
    assert track.startswith(b"\x00\xff\x51\x03" + (400_000).to_bytes(3, "big"))
    assert track.endswith(b"\xff\x2f\x00")
    notes = [(tick, status, data) for tick, status, data in track_events(track) if status < 0xC0]
    assert sum(status == 0x90 for _, status, _ in notes) == len(score.events)
    assert track_events(track)[-1] == (ticks(score.num_beats), 0xFF, b"\x2f\x00")


def test_midi_ends_a_repeated_note_before_starting_it_again() -> None:
    tune = parse_tune("X:1\nM:2/4\nL:1/8\nK:C\nC2 C2 | C/ C/ z C2 |")
    _, (_, track) = midi_chunks(midi_bytes(score_of(tune)))
    notes = [(tick, status) for tick, status, _ in track_events(track) if status < 0xC0]
    sixteenth = TICKS_PER_BEAT // 4
    on, off = 0x90, 0x80
    expected = [(0, on), (4, off), (4, on), (8, off), (8, on), (9, off), (9, on), (10, off)]
    expected += [(12, on), (16, off)]
    assert notes == [(at * sixteenth, status) for at, status in expected]


# -- audio -----------------------------------------------------------------


def test_builtin_synth_is_audible_and_as_long_as_the_tempo_says() -> None:
    spec = TuneSpec("synth", 4, "C", "3/4", 90)
    score = score_of(parse_tune(repair("C2 E2 G2", spec)))
    samples = synthesise(score)
    seconds = 4 * 3 * 60 / 90
    assert len(samples) == round(seconds * SAMPLE_RATE)
    rms = np.sqrt(np.mean((samples / 32768.0) ** 2))
    assert rms > 0.05


def test_write_tune_builtin_writes_three_readable_files(tmp_path: Path) -> None:
    spec = TuneSpec("files", 2, "G", "4/4", 120)
    abc = repair("G A B c", spec)
    rendered = write_tune(abc, tmp_path / "sub" / "tune", use_fluidsynth=False)
    assert rendered.renderer == "builtin"
    assert parse_tune(rendered.abc_path.read_text()) == parse_tune(abc)
    assert rendered.midi_path.read_bytes().startswith(b"MThd")
    with wave.open(str(rendered.wav_path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, SAMPLE_RATE)
        assert wav.getnframes() == 4 * SAMPLE_RATE
    assert wav_rms(rendered.wav_path) > 0.05


@pytest.mark.skipif(not fluidsynth_available(), reason="fluidsynth or FluidR3_GM.sf2 missing")
def test_fluidsynth_renders_an_audible_wav(tmp_path: Path) -> None:
    spec = TuneSpec("fluid", 2, "D", "4/4", 120)
    rendered = write_tune(repair("D F A d", spec), tmp_path / "tune")
    assert rendered.renderer == "fluidsynth"
    with wave.open(str(rendered.wav_path)) as wav:
        assert wav.getframerate() == 44100
        assert wav.getnframes() >= 4 * 44100  # two bars at 120, plus the release tail
    assert wav_rms(rendered.wav_path) > 1e-3


# -- the syscall -----------------------------------------------------------


class ScriptedKernel:
    """A test double of KernelHandle: each process it spawns "writes" the next scripted text."""

    uid = 1000
    nice = 0

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        self.spawned: list[dict[str, Any]] = []
        self.killed: list[int] = []

    async def spawn(self, prompt: str | None = None, **kwargs: Any) -> int:
        self.spawned.append(kwargs)
        return len(self.spawned)

    async def wait(self, pid: int) -> ScriptedWaited:
        return ScriptedWaited(proc=ScriptedProc(exit_status="exited"), text=self.texts[pid - 1])

    async def kill(self, pid: int) -> None:
        self.killed.append(pid)

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)


class ScriptedProc(msgspec.Struct):
    """The part of ``ProcInfo`` the handler reads."""

    exit_status: str | None = None
    error: str | None = None


class ScriptedWaited(msgspec.Struct):
    """The part of ``Waited`` the handler reads."""

    proc: ScriptedProc
    text: str


def run_compose(texts: Sequence[str], **params: Any) -> tuple[ComposeResult, ScriptedKernel]:
    kernel = ScriptedKernel(texts)
    args = ComposeParams(description="a sea shanty", **params)
    args.validate()
    return asyncio.run(compose(kernel, args)), kernel


def test_compose_takes_the_first_complete_attempt_and_kills_the_rest() -> None:
    junk = "I am a small model and I like music."
    result, kernel = run_compose([junk, "D2 F2 | A4 |]", "C4 | C4"], bars=2, key="D", meter="2/4")
    assert (result.attempts, result.repaired, kernel.killed) == (2, False, [3])
    assert result.abc.splitlines()[-1] == "D2 F2 | A4 |]"
    seeds = [s["seed"] for s in kernel.spawned]
    assert seeds == [seeds[0], seeds[0] + 1, seeds[0] + 2]
    assert all(s["model"] == "music_generation" for s in kernel.spawned)


def test_compose_repairs_when_no_attempt_is_complete(tmp_path: Path) -> None:
    texts = ["no music here", "C D E F G A", "xyz"]
    result, kernel = run_compose(texts, bars=5, key="Bb", tempo=200, seed=41)
    assert (result.attempts, result.repaired, result.bars) == (3, True, 5)
    assert [s["seed"] for s in kernel.spawned] == [41, 42, 43]
    assert "C D E F G A" in result.abc
    tune = parse_tune(result.abc)
    assert len(tune.bars) == 5 and tune.fields["Q"] == "1/4=200"
    for path in (result.abc_path, result.midi_path, result.wav_path):
        assert Path(path).parent.name == "music" and Path(path).is_file()
    assert result.renderer in ("fluidsynth", "builtin")
    assert wav_rms(Path(result.wav_path)) > 1e-3


@pytest.mark.parametrize(
    "bad",
    [
        {"bars": 0},
        {"bars": 65},
        {"tempo": 19},
        {"tempo": 301},
        {"key": "H"},
        {"meter": "7/16"},
        {"description": "  "},
    ],
)
def test_compose_params_are_validated(bad: dict[str, Any]) -> None:
    params = msgspec.convert({"description": "a tune", **bad}, type=ComposeParams)
    with pytest.raises(InvalidArgument):
        params.validate()


def test_the_plugin_registers_compose_and_its_preset() -> None:
    registry = collect(plugin_manager("music"))
    spec = registry.syscalls["compose"]
    assert (spec.params, spec.result, spec.plugin) == (ComposeParams, ComposeResult, "music")
    assert "SmolLM2-135M" in (music.__doc__ or "")
    preset = registry.presets["music_generation"]
    assert (preset.model, preset.task) == ("default", "compose")
    assert preset.defaults == {"temperature": 0.8}


def test_cli_sends_the_options_and_copies_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = write_tune(repair("C E G", TuneSpec("cli", 1, "C", "4/4", 120)), tmp_path / "k/t", False)
    sent: dict[str, Any] = {}

    def recorded_call(shell: Any, name: str, args: dict[str, Any], *_: Any) -> Any:
        sent.update(args, name=name)
        return {"abc": "X:1", "wav_path": str(made.wav_path), "midi_path": str(made.midi_path)}

    monkeypatch.setattr("llmos.cli.plugin_commands.call_and_print", recorded_call)
    out = tmp_path / "out.wav"
    argv = ["--bars", "4", "--key", "Am", "-o", str(out), "--midi", str(tmp_path / "o.mid"), "x"]
    result = CliRunner().invoke(compose_command, argv, obj=None)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == made.wav_path.read_bytes()
    assert (tmp_path / "o.mid").read_bytes() == made.midi_path.read_bytes()
    assert sent["name"] == "compose"
    del sent["name"]
    msgspec.convert(sent, type=ComposeParams).validate()
