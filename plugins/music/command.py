"""``llmosctl compose``: call the syscall, print the ABC, copy the files out if asked."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click

OUT_PATH = click.Path(dir_okay=False, writable=True, path_type=Path)


@click.command("compose")
@click.option("--output", "-o", "wav_out", type=OUT_PATH, help="Copy the WAV here.")
@click.option("--midi", "midi_out", type=OUT_PATH, help="Copy the MIDI file here.")
@click.option("--bars", default=8, show_default=True, type=click.IntRange(1, 64))
@click.option("--key", default="C", show_default=True, help="C, Am, F#m, Bb, ...")
@click.option("--tempo", default=120, show_default=True, type=click.IntRange(20, 300))
@click.option("--meter", default="4/4", show_default=True)
@click.option("--seed", type=int, default=None, help="Make the model's attempts reproducible.")
@click.option("--model", "-m", default="music_generation", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.argument("description")
@click.pass_obj
def compose_command(
    shell: Any,
    wav_out: Path | None,
    midi_out: Path | None,
    as_json: bool,
    description: str,
    **options: Any,
) -> None:
    """Compose a melody for DESCRIPTION (`-` reads stdin); prints it in ABC notation."""
    from llmos.cli.plugin_commands import call_and_print, read_text

    args = {"description": read_text(description), **options}
    result = call_and_print(shell, "compose", args, "abc", as_json)
    for source, target in ((result.get("wav_path"), wav_out), (result.get("midi_path"), midi_out)):
        if source and target:
            copy_out(Path(source), target)


def copy_out(source: Path, target: Path) -> None:
    """Copy a file the kernel wrote; a click error if it cannot be read or written."""
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        raise click.ClickException(f"cannot copy {source} to {target}: {exc.strerror}") from None
