"""Keys and meters: what ``K:`` and ``M:`` mean, as the rest of the plugin needs them.

A key is a tonic (a letter with an optional ``#`` or ``b``) and a mode
(major, or minor with ``m``); its signature is counted in fifths, sharps
positive, flats negative. A meter is ``N/D`` (or ``C`` and ``C|``); its bar
length is measured in units of ``L:1/8``, the unit every tune here uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from llmos.syscalls.errors import InvalidArgument

LETTERS = "CDEFGAB"
# Semitones of each natural letter above C.
LETTER_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# Where each letter's major key sits on the circle of fifths.
LETTER_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}
SHARP_ORDER = "FCGDAEB"
FLAT_ORDER = "BEADGCF"
UNIT = Fraction(1, 8)  # the L: of every tune the plugin writes
MAX_FIFTHS = 7
METER_DENOMINATORS = (2, 4, 8)
MAX_METER_NUMERATOR = 12

_KEY = re.compile(r"^([A-G])([#b]?)(m?)$")
_METER = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Key:
    """A key such as ``F#m``: tonic letter, its accidental and the mode."""

    letter: str
    accidental: str
    is_minor: bool

    @property
    def name(self) -> str:
        return self.letter + self.accidental + ("m" if self.is_minor else "")

    @property
    def fifths(self) -> int:
        """Sharps (positive) or flats (negative) in the signature."""
        shift = {"#": 7, "b": -7, "": 0}[self.accidental]
        return LETTER_FIFTHS[self.letter] + shift - (3 if self.is_minor else 0)

    @property
    def signature(self) -> dict[str, int]:
        """Semitones the signature adds to each letter (absent letters: 0)."""
        if self.fifths >= 0:
            return {letter: 1 for letter in SHARP_ORDER[: self.fifths]}
        return {letter: -1 for letter in FLAT_ORDER[: -self.fifths]}

    @property
    def scale(self) -> list[str]:
        """Two octaves of the key's scale as ABC notes from the tonic near middle C.

        The signature supplies the accidentals, so plain letters spell the scale.
        """
        start = LETTERS.index(self.letter)
        letters = [LETTERS[(start + i) % 7] for i in range(15)]
        octave_up = [start + i >= 7 for i in range(15)]
        octave_two = [start + i >= 14 for i in range(15)]
        return [
            (letter.lower() if up else letter) + ("'" if two else "")
            for letter, up, two in zip(letters, octave_up, octave_two, strict=True)
        ]


def parse_key(text: str) -> Key:
    """The key ``text`` names (``C``, ``Am``, ``F#m``, ``Bb``); InvalidArgument otherwise."""
    match = _KEY.match(text.strip())
    if match is None:
        raise InvalidArgument(f"bad key {text!r}: use A-G, optional # or b, optional m (F#m)")
    key = Key(match.group(1), match.group(2), match.group(3) == "m")
    if abs(key.fifths) > MAX_FIFTHS:
        raise InvalidArgument(f"key {text!r} has no key signature; use its enharmonic twin")
    return key


def parse_meter(text: str) -> Fraction:
    """The bar length of meter ``text`` in units of ``L:1/8``; InvalidArgument if unsupported."""
    text = text.strip()
    if text in ("C", "C|"):
        return Fraction(1) / UNIT
    match = _METER.match(text)
    if match is None:
        raise InvalidArgument(f"bad meter {text!r}: use N/D, such as 4/4, 3/4 or 6/8")
    beats, beat = int(match.group(1)), int(match.group(2))
    if beat not in METER_DENOMINATORS or not 1 <= beats <= MAX_METER_NUMERATOR:
        raise InvalidArgument(
            f"unsupported meter {text!r}: N in 1..{MAX_METER_NUMERATOR}, D in 2, 4 or 8"
        )
    return Fraction(beats, beat) / UNIT
