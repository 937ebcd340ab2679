"""From a parsed tune to timed notes: pitches (key signature and bar accidentals applied)
and start times in quarter-note beats, which the MIDI writer and the synthesiser share."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from llmos.plugins.music.abc import Note, Tune
from llmos.plugins.music.theory import LETTER_SEMITONES

MIDDLE_C = 60
ACCIDENTALS = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}


@dataclass(frozen=True)
class NoteEvent:
    """A sounding note: MIDI pitch, start and duration in quarter-note beats."""

    pitch: int
    start: Fraction
    duration: Fraction

    @property
    def end(self) -> Fraction:
        return self.start + self.duration


@dataclass(frozen=True)
class Score:
    """The notes of a tune, its tempo (quarter notes per minute) and total length in beats."""

    events: list[NoteEvent]
    tempo: int
    num_beats: Fraction

    @property
    def seconds(self) -> float:
        return float(self.num_beats) * 60.0 / self.tempo


def pitch_of(note: Note, signature: dict[str, int], in_bar: dict[tuple[str, int], int]) -> int:
    """The MIDI pitch of ``note``; an explicit accidental holds to the end of its bar."""
    place = (note.letter, note.octave)
    if note.accidental:
        in_bar[place] = ACCIDENTALS[note.accidental]
    alter = in_bar.get(place, signature.get(note.letter, 0))
    return MIDDLE_C + 12 * note.octave + LETTER_SEMITONES[note.letter] + alter


def score_of(tune: Tune) -> Score:
    """Every note of ``tune`` in order, rests as gaps; pitches clamped to MIDI's 0..127."""
    signature = tune.key.signature
    beats_per_unit = tune.unit * 4
    events: list[NoteEvent] = []
    now = Fraction(0)
    for bar in tune.bars:
        in_bar: dict[tuple[str, int], int] = {}
        for note in bar:
            duration = note.length * beats_per_unit
            if not note.is_rest:
                pitch = min(max(pitch_of(note, signature, in_bar), 0), 127)
                events.append(NoteEvent(pitch, now, duration))
            now += duration
    return Score(events, tune.tempo, now)
