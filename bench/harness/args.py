"""Command-line flags the benchmark scripts share, spelled and documented once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.machine import num_cores


def new_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of a script's docstring."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0])


def shared_flags() -> dict[str, dict[str, Any]]:
    """Each shared flag's ``add_argument`` settings."""
    return {
        "--dtype": {"choices": ["bfloat16", "float32"], "default": "bfloat16"},
        "--threads": {"type": int, "default": num_cores()},
        "--seed": {"type": int, "default": 0},
        "--data-dir": {"type": Path, "default": None, "help": "llmos data dir (model cache)"},
        "--json": {"type": Path, "default": None, "help": "write the figures here"},
    }


def add_flags(ap: argparse.ArgumentParser, *names: str) -> None:
    """Add the shared flags ``names`` (``--seed``, ``--json`` ...) in that order."""
    flags = shared_flags()
    for name in names:
        ap.add_argument(name, **flags[name])


def scale_of(args: argparse.Namespace) -> str:
    """The workload scale the ``--tiny`` and ``--quick`` flags ask for."""
    return "tiny" if args.tiny else "quick" if args.quick else "full"
