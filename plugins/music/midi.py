"""A standard MIDI file writer: format 0, one track, a tempo, notes on and off.

Small enough to own rather than depend on a library: the header chunk, one
track chunk of delta-timed events, and the end-of-track meta event.
"""

from __future__ import annotations

import struct

from llmos.plugins.music.score import Score

TICKS_PER_BEAT = 480
CHANNEL = 0
PROGRAM = 0  # General MIDI acoustic grand piano
VELOCITY = 90
NOTE_ON, NOTE_OFF, PROGRAM_CHANGE = 0x90, 0x80, 0xC0
META_TEMPO = b"\xff\x51\x03"
META_END = b"\xff\x2f\x00"


def varlen(value: int) -> bytes:
    """``value`` as a MIDI variable-length quantity: 7 bits a byte, high bit = more follow."""
    assert value >= 0
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def ticks(beats: float) -> int:
    return round(beats * TICKS_PER_BEAT)


def timed_events(score: Score) -> list[tuple[int, int, bytes]]:
    """(tick, order, message) for every note on and off; at one tick, offs sort first."""
    events = []
    for note in score.events:
        events.append((ticks(note.start), 1, bytes([NOTE_ON | CHANNEL, note.pitch, VELOCITY])))
        events.append((ticks(note.end), 0, bytes([NOTE_OFF | CHANNEL, note.pitch, 0])))
    return sorted(events)


def track_data(score: Score) -> bytes:
    """The track chunk's body: tempo, program, the notes, end of track."""
    microseconds = round(60_000_000 / score.tempo)
    data = bytearray(varlen(0) + META_TEMPO + microseconds.to_bytes(3, "big"))
    data += varlen(0) + bytes([PROGRAM_CHANGE | CHANNEL, PROGRAM])
    now = 0
    for tick, _, message in timed_events(score):
        data += varlen(tick - now) + message
        now = tick
    end = max(ticks(score.num_beats) - now, 0)
    data += varlen(end) + META_END
    return bytes(data)


def midi_bytes(score: Score) -> bytes:
    """A whole format-0 MIDI file for ``score``."""
    header = struct.pack(">4sIHHH", b"MThd", 6, 0, 1, TICKS_PER_BEAT)
    track = track_data(score)
    return header + struct.pack(">4sI", b"MTrk", len(track)) + track
