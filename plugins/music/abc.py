"""A small ABC notation parser and writer, for the subset the plugin uses.

Header fields ``X T M L Q K``; notes ``A-G a-g`` with octave marks ``'`` and
``,``, accidentals ``^ ^^ _ __ =`` and lengths (``2``, ``/2``, ``/``,
``3/2``); rests ``z``; bar lines ``| || |] [| :| |: ::``. A chord
``[CEG]`` is reduced to its first note. Anything else is an
:class:`AbcError`: the parser is strict, so that "it parses" means the text
is ABC a player would read the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from llmos.plugins.music.theory import UNIT, Key, parse_key, parse_meter
from llmos.syscalls.errors import InvalidArgument

NOTE = r"(?P<acc>\^\^|\^|__|_|=)?(?P<letter>[A-Ga-gz])(?P<octave>[',]*)"
LENGTH = r"(?P<num>\d*)(?:(?P<slash>/+)(?P<den>\d*))?"
_NOTE = re.compile(NOTE + LENGTH)
_BAR = re.compile(r":*\|+\]?:*|\[\||::")
_CHORD = re.compile(r"\[(?P<notes>[^\]\[|]*)\](?P<num>\d*)(?:(?P<slash>/+)(?P<den>\d*))?")
_SPACE = re.compile(r"\s+")
_FIELD = re.compile(r"^([A-Za-z]):(.*)$")
_TEMPO = re.compile(r"(?:\d+/\d+=)?[1-9]\d{0,3}")
MAX_LENGTH = Fraction(64)


class AbcError(InvalidArgument):
    """Text that is not ABC in the subset the plugin reads."""


@dataclass(frozen=True)
class Note:
    """One note or rest (``letter == "z"``); ``length`` is in units of the tune's ``L:``."""

    letter: str
    octave: int = 0
    accidental: str = ""
    length: Fraction = Fraction(1)

    @property
    def is_rest(self) -> bool:
        return self.letter == "z"

    def __str__(self) -> str:
        if self.is_rest:
            return "z" + format_length(self.length)
        name = self.letter if self.octave <= 0 else self.letter.lower()
        marks = "," * -self.octave if self.octave < 0 else "'" * max(self.octave - 1, 0)
        return self.accidental + name + marks + format_length(self.length)


Bar = list[Note]


@dataclass(frozen=True)
class Tune:
    """A parsed tune: its header fields by letter and its bars of notes."""

    fields: dict[str, str]
    bars: list[Bar]

    @property
    def unit(self) -> Fraction:
        """The default note length ``L:`` as a fraction of a whole note."""
        return parse_fraction(self.fields.get("L", "1/8"))

    @property
    def key(self) -> Key:
        return parse_key(self.fields["K"])

    @property
    def bar_units(self) -> Fraction:
        """The length of a full bar in units of ``L:``."""
        return parse_meter(self.fields["M"]) * UNIT / self.unit

    @property
    def tempo(self) -> int:
        """Quarter notes per minute from ``Q:`` (120 if absent); ``Q:3/8=40`` is 60."""
        beat, _, per_minute = self.fields.get("Q", "1/4=120").rpartition("=")
        quarters = parse_fraction(beat) * 4 if beat else Fraction(1)
        return max(1, round(quarters * int(per_minute)))


def format_length(length: Fraction) -> str:
    """The ABC suffix for ``length`` units: ``""``, ``2``, ``/2``, ``3/2``."""
    if length == 1:
        return ""
    if length.denominator == 1:
        return str(length.numerator)
    num = "" if length.numerator == 1 else str(length.numerator)
    return f"{num}/{length.denominator}"


def parse_fraction(text: str) -> Fraction:
    """``1/8`` as a Fraction; AbcError if it is not a positive fraction."""
    match = re.fullmatch(r"\s*(\d+)/(\d+)\s*", text)
    if match is None or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        raise AbcError(f"bad fraction {text!r}")
    return Fraction(int(match.group(1)), int(match.group(2)))


def length_of(match: re.Match[str]) -> Fraction:
    """The length a ``num/den`` match spells; AbcError if zero or absurd."""
    num = int(match["num"]) if match["num"] else 1
    slashes, den_text = match["slash"] or "", match["den"] or ""
    if len(slashes) > 1 and den_text:
        raise AbcError(f"bad note length in {match.group(0)!r}")
    den = int(den_text) if den_text else 2 ** len(slashes)
    if num == 0 or den == 0 or Fraction(num, den) > MAX_LENGTH:
        raise AbcError(f"bad note length in {match.group(0)!r}")
    return Fraction(num, den)


def note_of(match: re.Match[str], scale: Fraction = Fraction(1)) -> Note:
    """The Note a ``_NOTE`` match spells, its length multiplied by ``scale``."""
    letter = match["letter"]
    octave = 1 if letter.islower() and letter != "z" else 0
    octave += match["octave"].count("'") - match["octave"].count(",")
    if letter == "z" and (match["acc"] or match["octave"]):
        raise AbcError(f"a rest has no pitch: {match.group(0)!r}")
    upper = letter if letter == "z" else letter.upper()
    return Note(upper, octave, match["acc"] or "", length_of(match) * scale)


def chord_note(match: re.Match[str]) -> Note:
    """A chord reduced to its first note, scaled by the chord's own length."""
    content = match["notes"].replace(" ", "")
    notes, pos = [], 0
    while pos < len(content) and (inner := _NOTE.match(content, pos)):
        notes.append(note_of(inner, length_of(match)))
        pos = inner.end()
    if not notes or pos < len(content):
        raise AbcError(f"bad chord {match.group(0)!r}")
    return notes[0]


def parse_body(text: str) -> list[Bar]:
    """The bars of a tune body; empty bars (between adjacent bar lines) are dropped."""
    bars: list[Bar] = [[]]
    pos = 0
    while pos < len(text):
        if match := _SPACE.match(text, pos):
            pass
        elif match := _BAR.match(text, pos):
            bars.append([])
        elif match := _CHORD.match(text, pos):
            bars[-1].append(chord_note(match))
        elif match := _NOTE.match(text, pos):
            bars[-1].append(note_of(match))
        else:
            raise AbcError(f"not ABC at {pos}: {text[pos : pos + 12]!r}")
        pos = match.end()
    return [bar for bar in bars if bar]


def parse_tune(text: str) -> Tune:
    """A whole tune: header fields up to ``K:``, then the body; ``X M L K`` are required."""
    fields: dict[str, str] = {}
    body: list[str] = []
    for raw in text.splitlines():
        line = raw.split("%", 1)[0].strip()
        field = _FIELD.match(line)
        if "K" not in fields and field:
            fields[field.group(1)] = field.group(2).strip()
        elif field:
            raise AbcError(f"field {line!r} inside the body")
        elif line and "K" not in fields:
            raise AbcError(f"music {line!r} before the K: field")
        elif line:
            body.append(line)
    check_header(fields)
    return Tune(fields, parse_body("\n".join(body)))


def check_header(fields: dict[str, str]) -> None:
    """AbcError unless ``X M L K`` are present and ``M L Q K`` readable."""
    missing = [name for name in "XMLK" if name not in fields]
    if missing:
        raise AbcError(f"header lacks {', '.join(missing)}")
    parse_fraction(fields["L"])
    if "Q" in fields and not _TEMPO.fullmatch(fields["Q"]):
        raise AbcError(f"bad tempo Q:{fields['Q']}")
    try:
        parse_meter(fields["M"])
        parse_key(fields["K"])
    except InvalidArgument as exc:
        raise AbcError(exc.message) from None


def salvage(text: str) -> list[Note]:
    """Every note in ``text`` that sits in a whitespace-separated word of valid ABC.

    Words holding anything else (prose, header fields, ties, decorations) are
    skipped whole, so English around the music contributes little.
    """
    notes: list[Note] = []
    for line in text.splitlines():
        if _FIELD.match(line.strip()):
            continue
        for word in line.split():
            try:
                notes.extend(note for bar in parse_body(word) for note in bar)
            except AbcError:
                continue
    return notes


def bar_length(bar: Bar) -> Fraction:
    """The total length of ``bar`` in units of ``L:``."""
    return sum((note.length for note in bar), Fraction(0))


def format_tune(fields: dict[str, str], bars: list[Bar], bars_per_line: int = 4) -> str:
    """ABC text: the header fields in order, then the bars, ``|]`` after the last."""
    header = [f"{name}:{value}" for name, value in fields.items()]
    lines = []
    for start in range(0, len(bars), bars_per_line):
        chunk = [" ".join(str(note) for note in bar) for bar in bars[start : start + bars_per_line]]
        end = " |]" if start + bars_per_line >= len(bars) else " |"
        lines.append(" | ".join(chunk) + end)
    return "\n".join(header + lines) + "\n"
