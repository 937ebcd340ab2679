"""``python -m llmos``: load the default model and chat with it in the terminal.

The resident kernel daemon and ``llmosctl`` come next; until then this runs
the engine in-process.
"""

from __future__ import annotations

import argparse
import sys

from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine
from llmos.syscalls.errors import LlmosError
from llmos.syscalls.sampling import SamplingParams


def main(argv: list[str] | None = None) -> int:
    """Chat with a model: one line in, a streamed reply out; Ctrl-D ends."""
    parser = argparse.ArgumentParser(prog="python -m llmos", description=main.__doc__)
    parser.add_argument("--model", default="default", help="preset name, local path or hub id")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0)
    args = parser.parse_args(argv)
    try:
        engine = Engine.from_model(args.model, EngineConfig(dtype=args.dtype, kv_budget=0.1))
    except LlmosError as exc:
        print(f"llmos: {exc}", file=sys.stderr)
        return 1
    params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature)
    print(f"llmos: {args.model} loaded ({args.dtype}). Type a message; Ctrl-D to quit.")
    messages: list[dict[str, str]] = []
    for line in sys.stdin:
        messages.append({"role": "user", "content": line.strip()})
        process = engine.add(messages, params)
        while not process.is_finished:
            for out in engine.step():
                print(out.text, end="", flush=True)
        print()
        messages.append({"role": "assistant", "content": process.text})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
