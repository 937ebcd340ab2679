"""Turning whatever the model wrote into a tune: accept it when it is right, else repair it.

A model's output is accepted as is when its music lines parse and hold
exactly the requested number of full bars, each with a sounding note.
Otherwise it is repaired: the notes it wrote in valid ABC are kept in order
(lengths rounded to common values, octaves brought into a singable range),
poured into bars of the meter's length (a note that would cross a bar line
is shortened) and cut at the requested number of bars; if they run out
first, the rest is a walk on the key's scale that ends on the tonic. The
result always parses, with exactly the requested bars.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import chain

from llmos.plugins.music.abc import (
    AbcError,
    Bar,
    Note,
    bar_length,
    format_tune,
    parse_body,
    salvage,
)
from llmos.plugins.music.theory import Key, parse_key, parse_meter

COMMON_LENGTHS = tuple(Fraction(n, 2) for n in (1, 2, 3, 4, 6, 8, 12, 16))
PAD_LENGTHS = (Fraction(1), Fraction(1), Fraction(2), Fraction(2), Fraction(2), Fraction(4))
MIN_OCTAVE, MAX_OCTAVE = -1, 2
MAX_TITLE = 60
_FIELD_LINE = re.compile(r"^\s*[A-Za-z]:")


@dataclass(frozen=True)
class TuneSpec:
    """What was asked for: the header of the tune and how many bars it must have."""

    description: str
    num_bars: int
    key: str
    meter: str
    tempo: int

    @property
    def bar_units(self) -> Fraction:
        """Length of a bar in units of ``L:1/8``."""
        return parse_meter(self.meter)

    @property
    def fields(self) -> dict[str, str]:
        return {
            "X": "1",
            "T": title(self.description),
            "M": self.meter,
            "L": "1/8",
            "Q": f"1/4={self.tempo}",
            "K": self.key,
        }


def title(description: str) -> str:
    """A one-line title of at most ``MAX_TITLE`` characters, without ABC's comment mark."""
    printable = "".join(ch if ch.isprintable() and ch != "%" else " " for ch in description)
    text = " ".join(printable.split()) or "Untitled"
    return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 3].rstrip() + "..."


def music_lines(text: str) -> str:
    """The lines of ``text`` that parse as ABC music (fields, fences and prose dropped)."""
    kept = []
    for line in text.splitlines():
        if _FIELD_LINE.match(line):
            continue
        try:
            parse_body(line)
        except AbcError:
            continue
        kept.append(line)
    return "\n".join(kept)


def is_complete(bars: list[Bar], spec: TuneSpec) -> bool:
    """Exactly the bars asked for, each full and each with a sounding note."""
    return len(bars) == spec.num_bars and all(
        bar_length(bar) == spec.bar_units and any(not n.is_rest for n in bar) for bar in bars
    )


def accept(text: str, spec: TuneSpec) -> str | None:
    """The model's tune as ABC if it is complete as written, else None."""
    bars = parse_body(music_lines(text))
    return format_tune(spec.fields, bars) if is_complete(bars, spec) else None


def repair(text: str, spec: TuneSpec, seed: int = 0) -> str:
    """ABC with the notes of ``text`` kept and the bars made whole (see the module)."""
    key = parse_key(spec.key)
    notes = [tidy(note, spec.bar_units) for note in salvage(text)]
    bars = pour(notes, spec, pad_notes(key, random.Random(seed)), tonic_of(key))
    return format_tune(spec.fields, bars)


def tidy(note: Note, bar_units: Fraction) -> Note:
    """``note`` with its length rounded to a common one that fits a bar, octave clamped."""
    fitting = [length for length in COMMON_LENGTHS if length <= bar_units]
    length = min(fitting, key=lambda common: (abs(common - note.length), common))
    return replace(note, length=length, octave=min(max(note.octave, MIN_OCTAVE), MAX_OCTAVE))


def pour(notes: list[Note], spec: TuneSpec, padding: Iterator[Note], tonic: Note) -> list[Bar]:
    """``notes`` in order into ``spec.num_bars`` full bars, then ``padding``.

    When the padding reaches the end, the tune closes on the tonic.
    """
    source = chain(notes, padding)
    bars = [fill_bar(source, spec.bar_units, tonic) for _ in range(spec.num_bars)]
    if sum(len(bar) for bar in bars) > len(notes):
        bars[-1][-1] = replace(tonic, length=bars[-1][-1].length)
    return bars


def fill_bar(source: Iterator[Note], units: Fraction, tonic: Note) -> Bar:
    """One full bar from ``source``; a note crossing the bar line is shortened.

    A bar of rests only gets the tonic in place of its first rest.
    """
    bar: Bar = []
    while (left := units - bar_length(bar)) > 0:
        note = next(source)
        bar.append(replace(note, length=min(note.length, left)))
    if all(note.is_rest for note in bar):
        bar[0] = replace(tonic, length=bar[0].length)
    return bar


def tonic_of(key: Key) -> Note:
    return parse_body(key.scale[0])[0][0]


def pad_notes(key: Key, rng: random.Random) -> Iterator[Note]:
    """An endless stepwise walk on the scale of ``key``, in lengths from ``PAD_LENGTHS``."""
    scale = [parse_body(name)[0][0] for name in key.scale[:10]]
    degree = 0
    while True:
        yield replace(scale[degree], length=rng.choice(PAD_LENGTHS))
        degree = min(max(degree + rng.choice((-2, -1, -1, 1, 1, 2)), 0), len(scale) - 1)
