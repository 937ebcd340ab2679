"""``compose``: a short melody from a description, as ABC, MIDI and WAV.

The model writes the tune in ABC notation; the plugin parses what it wrote
with its own strict parser, retries with other seeds, and when no attempt
gives the requested bars it repairs the best one (see
:mod:`llmos.plugins.music.repair`). The default model (SmolLM2-135M) is
tiny and knows little ABC: expect most tunes to be repaired, the model's
notes kept and the rest a walk on the key's scale. The files go to
``<data dir>/music/``; the WAV comes from fluidsynth with the General MIDI
soundfont when both are installed, else from a built-in synthesiser.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import Any

import msgspec

from llmos.drivers.loaders.datadir import resolve_data_dir
from llmos.plugins.api import KernelHandle
from llmos.plugins.hookspecs import hookimpl
from llmos.plugins.music.abc import salvage
from llmos.plugins.music.command import compose_command
from llmos.plugins.music.prompt import messages_for
from llmos.plugins.music.render import write_tune
from llmos.plugins.music.repair import TuneSpec, accept, repair
from llmos.plugins.music.theory import parse_key, parse_meter
from llmos.syscalls.errors import InvalidArgument, LlmosError

MAX_ATTEMPTS = 3
MAX_BARS = 64
MIN_TEMPO, MAX_TEMPO = 20, 300
MAX_DESCRIPTION = 1000
SAMPLING: dict[str, Any] = {"temperature": 0.8, "top_p": 0.95}
TOKENS_PER_BAR = 32


class ComposeParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of ``compose``."""

    description: str
    bars: int = 8
    key: str = "C"
    tempo: int = 120
    meter: str = "4/4"
    model: str = "music_generation"
    seed: int | None = None
    nice: int = 0

    def validate(self) -> None:
        if not self.description.strip():
            raise InvalidArgument("describe the tune to compose")
        if len(self.description) > MAX_DESCRIPTION:
            raise InvalidArgument(f"description longer than {MAX_DESCRIPTION} characters")
        if not 1 <= self.bars <= MAX_BARS:
            raise InvalidArgument(f"bars must be in 1..{MAX_BARS}, got {self.bars}")
        if not MIN_TEMPO <= self.tempo <= MAX_TEMPO:
            raise InvalidArgument(f"tempo must be in {MIN_TEMPO}..{MAX_TEMPO}, got {self.tempo}")
        parse_key(self.key)
        parse_meter(self.meter)

    @property
    def spec(self) -> TuneSpec:
        return TuneSpec(self.description, self.bars, self.key, self.meter, self.tempo)


class ComposeResult(msgspec.Struct, kw_only=True):
    """The tune, where its files are, and how it was made."""

    abc: str
    midi_path: str
    wav_path: str
    renderer: str
    attempts: int
    bars: int
    abc_path: str = ""
    repaired: bool = False


def music_dir() -> Path:
    return resolve_data_dir() / "music"


async def write_abc(kernel: KernelHandle, params: ComposeParams) -> tuple[str, int, bool]:
    """ABC for ``params``: the first attempt that is complete, else the best one repaired.

    The attempts run at once (the kernel batches them), each with its own
    seed, and are read in order; the ones left when one is accepted are
    killed. Returns the ABC, the attempts read and whether it was repaired.
    """
    spec = params.spec
    first = secrets.randbelow(2**31) if params.seed is None else params.seed
    sampling = {**SAMPLING, "max_tokens": TOKENS_PER_BAR * (spec.num_bars + 1)}
    messages = messages_for(spec)
    pids = [
        await kernel.spawn(messages=messages, model=params.model, seed=first + i, **sampling)
        for i in range(MAX_ATTEMPTS)
    ]
    texts: list[str] = []
    for attempt, pid in enumerate(pids, start=1):
        waited = await kernel.wait(pid)
        if waited.proc.exit_status == "error":
            raise LlmosError(f"compose: process {pid} failed: {waited.proc.error}")
        if (abc := accept(waited.text, spec)) is not None:
            for other in pids[attempt:]:
                with contextlib.suppress(LlmosError):
                    await kernel.kill(other)
            return abc, attempt, False
        texts.append(waited.text)
    best = max(texts, key=lambda text: sum(not note.is_rest for note in salvage(text)))
    return repair(best, spec, seed=first), MAX_ATTEMPTS, True


async def compose(kernel: KernelHandle, params: ComposeParams) -> ComposeResult:
    """Compose ``bars`` bars of melody for ``description`` in ``key``, ``meter`` and ``tempo``.

    Returns the tune as ABC (always parseable, exactly ``bars`` full bars)
    and the paths of its ``.abc``, ``.mid`` and ``.wav`` files under the
    kernel's data directory; ``renderer`` says what made the WAV
    (``fluidsynth`` or ``builtin``), ``repaired`` whether the model's ABC
    had to be mended. ``seed`` makes the model's attempts reproducible.
    """
    abc, attempts, repaired = await write_abc(kernel, params)
    stem = music_dir() / secrets.token_hex(8)
    rendered = await kernel.run_blocking(write_tune, abc, stem)
    return ComposeResult(
        abc=abc,
        midi_path=str(rendered.midi_path),
        wav_path=str(rendered.wav_path),
        renderer=rendered.renderer,
        attempts=attempts,
        bars=params.bars,
        abc_path=str(rendered.abc_path),
        repaired=repaired,
    )


@hookimpl
def llmos_register_syscalls(register: Any) -> None:
    register("compose", compose, ComposeParams, ComposeResult)


@hookimpl
def llmos_register_models(register: Any) -> None:
    register(
        "music_generation",
        "default",
        "compose",
        "melodies in ABC notation with the default model",
        {"temperature": 0.8},
    )


@hookimpl
def llmos_cli(cli: Any) -> None:
    cli.add_command(compose_command)
