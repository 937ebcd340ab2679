"""The chat the model is given: a worked two-bar example in the requested key and
meter (a scale run, poured into bars by the repairer so its bars are right), then
the request."""

from __future__ import annotations

from llmos.plugins.music.repair import TuneSpec, repair
from llmos.plugins.music.theory import parse_key

SYSTEM = (
    "You are a composer who writes melodies in ABC notation. "
    "Reply with the notes only: no header lines, no chords, no explanation."
)
EXAMPLE_BARS = 2


def request(spec: TuneSpec, description: str) -> str:
    units = spec.bar_units
    return (
        f"Write a {spec.num_bars}-bar melody for: {description}\n"
        f"K:{spec.key} M:{spec.meter} L:1/8. Each bar lasts {units} eighth notes "
        "(C2 is a quarter note, C4 a half note); separate bars with |."
    )


def example_body(example: TuneSpec) -> str:
    """A scale run up and down in the example's key and meter, without the header."""
    scale = parse_key(example.key).scale
    run = [scale[0] + "2", *scale[1:8], *scale[6::-1]]
    abc = repair(" ".join(run), example)
    return "\n".join(line for line in abc.splitlines() if line[1:2] != ":")


def messages_for(spec: TuneSpec) -> list[dict[str, str]]:
    """System prompt, one worked example, then the real request."""
    example = TuneSpec("a simple tune", EXAMPLE_BARS, spec.key, spec.meter, spec.tempo)
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": request(example, example.description)},
        {"role": "assistant", "content": example_body(example)},
        {"role": "user", "content": request(spec, spec.description)},
    ]
