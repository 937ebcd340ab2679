"""Writing a tune's files: ``.abc``, ``.mid`` and ``.wav``, rendered by fluidsynth when it
and a General MIDI soundfont are installed, else by the built-in synthesiser.

Blocking work (files, a subprocess): handlers call it through ``kernel.run_blocking``.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmos.plugins.music.abc import parse_tune
from llmos.plugins.music.midi import midi_bytes
from llmos.plugins.music.score import Score, score_of
from llmos.plugins.music.synth import synthesise, write_wav

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
FLUIDSYNTH_RATE = 44100
FLUIDSYNTH_TIMEOUT_S = 60.0
FLUIDSYNTH_GAIN = 1.0  # its default, 0.2, is quiet for a single melody line
MIN_RMS = 1e-3  # of full scale: quieter than this is taken as silence


@dataclass(frozen=True)
class Rendered:
    """Where a tune's files went and which renderer made the WAV."""

    abc_path: Path
    midi_path: Path
    wav_path: Path
    renderer: str


def fluidsynth_available(soundfont: Path = SOUNDFONT) -> bool:
    return shutil.which("fluidsynth") is not None and soundfont.is_file()


def render_fluidsynth(midi_path: Path, wav_path: Path, soundfont: Path = SOUNDFONT) -> bool:
    """Render with fluidsynth; True if it made an audible 16-bit WAV."""
    command = ["fluidsynth", "-ni", "-q", "-T", "wav", "-O", "s16", "-F", str(wav_path)]
    command += ["-r", str(FLUIDSYNTH_RATE), "-g", str(FLUIDSYNTH_GAIN)]
    command += [str(soundfont), str(midi_path)]
    try:
        subprocess.run(command, capture_output=True, timeout=FLUIDSYNTH_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return wav_path.is_file() and wav_rms(wav_path) > MIN_RMS


def render_builtin(score: Score, wav_path: Path) -> None:
    write_wav(wav_path, synthesise(score))


def wav_rms(path: Path) -> float:
    """Root mean square of a 16-bit WAV, as a fraction of full scale (0 if unreadable)."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2:
                return 0.0
            frames = wav.readframes(wav.getnframes())
    except (OSError, wave.Error, EOFError):
        return 0.0
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768.0
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def write_tune(abc: str, stem: Path, use_fluidsynth: bool | None = None) -> Rendered:
    """``stem``.abc, .mid and .wav for the tune ``abc``; the folder is created if needed."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(suffix) for suffix in (".abc", ".mid", ".wav")]
    abc_path, midi_path, wav_path = paths
    score = score_of(parse_tune(abc))
    abc_path.write_text(abc, encoding="utf-8")
    midi_path.write_bytes(midi_bytes(score))
    if use_fluidsynth is None:
        use_fluidsynth = fluidsynth_available()
    if use_fluidsynth and render_fluidsynth(midi_path, wav_path):
        return Rendered(abc_path, midi_path, wav_path, "fluidsynth")
    render_builtin(score, wav_path)
    return Rendered(abc_path, midi_path, wav_path, "builtin")
