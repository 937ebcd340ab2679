"""The built-in synthesiser: each note a sine with two harmonics under an
attack/decay envelope, summed, normalised, written as 16-bit mono WAV.

It is what renders when fluidsynth or its soundfont is missing: plain, but
every note is audible and the length follows the tempo exactly.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from llmos.plugins.music.score import Score

SAMPLE_RATE = 22050
HARMONICS = ((1, 1.0), (2, 0.4), (3, 0.15))  # (multiple of the fundamental, amplitude)
ATTACK_S = 0.01
RELEASE_S = 0.03
DECAY_PER_S = 3.0
PEAK = 0.8


def frequency(pitch: int) -> float:
    """Hertz of a MIDI pitch, A4 (69) = 440 Hz."""
    return float(440.0 * 2.0 ** ((pitch - 69) / 12))


def envelope(num_samples: int, sample_rate: int) -> npt.NDArray[np.float64]:
    """Linear attack, exponential decay, linear release to silence at the note's end."""
    t = np.arange(num_samples) / sample_rate
    shape = np.exp(-DECAY_PER_S * t)
    attack = max(1, min(num_samples, int(ATTACK_S * sample_rate)))
    shape[:attack] *= np.linspace(0.0, 1.0, attack)
    release = max(1, min(num_samples, int(RELEASE_S * sample_rate)))
    shape[-release:] *= np.linspace(1.0, 0.0, release)
    return shape


def tone(pitch: int, num_samples: int, sample_rate: int) -> npt.NDArray[np.float64]:
    """One note: the fundamental and its harmonics under the envelope."""
    t = np.arange(num_samples) / sample_rate
    f = frequency(pitch)
    waves = sum(amp * np.sin(2 * np.pi * f * mult * t) for mult, amp in HARMONICS)
    return np.asarray(waves) * envelope(num_samples, sample_rate)


def synthesise(score: Score, sample_rate: int = SAMPLE_RATE) -> npt.NDArray[np.int16]:
    """The score as 16-bit samples, exactly ``score.seconds`` long."""
    seconds_per_beat = 60.0 / score.tempo
    out = np.zeros(round(score.seconds * sample_rate))
    for note in score.events:
        start = round(float(note.start) * seconds_per_beat * sample_rate)
        stop = min(round(float(note.end) * seconds_per_beat * sample_rate), len(out))
        if stop > start:
            out[start:stop] += tone(note.pitch, stop - start, sample_rate)
    peak = float(np.max(np.abs(out))) if len(out) else 0.0
    if peak > 0:
        out *= PEAK / peak
    return (out * 32767).astype(np.int16)


def write_wav(path: Path, samples: npt.NDArray[np.int16], sample_rate: int = SAMPLE_RATE) -> None:
    """Mono 16-bit PCM WAV."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(samples.astype("<i2").tobytes())
