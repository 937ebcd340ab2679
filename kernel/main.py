"""Running the kernel in the foreground: logging, the event loop, exit codes."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

import pydantic

from llmos.kernel.server import KernelServer
from llmos.kernel.settings import KernelSettings
from llmos.syscalls.errors import LlmosError

log = logging.getLogger("llmos.kernel")


def run(settings: KernelSettings | None = None) -> int:
    """Run a kernel until it is shut down; the process exit code (0, or 1 on failure)."""
    try:
        settings = settings or KernelSettings()
    except pydantic.ValidationError as exc:
        print(f"llmos kernel: bad configuration:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        run_loop(KernelServer(settings).serve(), settings.event_loop)
    except LlmosError as exc:
        log.error("%s", exc.message)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_loop(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    """Run ``main`` on uvloop when it is there (and wanted), else on plain asyncio."""
    if event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if event_loop == "uvloop":
                raise
        else:
            uvloop.run(main)
            return
    asyncio.run(main)
