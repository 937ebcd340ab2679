"""Signals: TERM/KILL end a process; STOP suspends it and pages it out; CONT resumes it.

A stopped process costs no device memory: its pages go to swap (host, then
disk), or, with no swap room, its K/V is dropped and recomputed on resume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmos.kernel.memory import NOT_RESIDENT
from llmos.kernel.process import Process, ProcessState
from llmos.syscalls.errors import InvalidArgument

if TYPE_CHECKING:
    from llmos.kernel.engine import Engine

SIGNALS = ("TERM", "KILL", "STOP", "CONT")
STOPPABLE = (ProcessState.READY, ProcessState.RUNNING, ProcessState.WAITING)


def send_signal(engine: Engine, process: Process, signal: str) -> None:
    """Deliver ``signal`` to a live process of ``engine``."""
    if signal in ("TERM", "KILL"):
        engine.kill(process.pid)
    elif signal == "STOP":
        stop(engine, process)
    elif signal == "CONT":
        cont(engine, process)
    else:
        raise InvalidArgument(f"unknown signal {signal!r}; choose from {', '.join(SIGNALS)}")


def stop(engine: Engine, process: Process) -> None:
    """Suspend ``process`` and move its pages off the device (no-op if stopped)."""
    if process.state not in STOPPABLE:
        return
    engine.scheduler.suspend(process)
    memory = engine.memory
    if any(frame != NOT_RESIDENT for frame in process.block_table):
        if memory.can_page_out(process):
            memory.page_out(process)
        elif not process.swapped:
            memory.release(process)  # no swap room: recompute on resume
            process.num_computed_tokens = 0
    process.stop()
    engine.move_pages()


def cont(engine: Engine, process: Process) -> None:
    """Resume a stopped process: it is queued again (or waits for input, as before)."""
    if process.state is not ProcessState.STOPPED:
        return
    process.cont()
    if process.is_runnable:
        engine.scheduler.add(process)
