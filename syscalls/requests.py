"""Requests: one tagged Struct per syscall, sent by clients to the kernel.

Every request carries ``id``, chosen by the client and echoed in every reply
and stream event it causes, so one connection can have many calls in flight.
New fields always get defaults, so older clients keep working.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from llmos.syscalls.sampling import SamplingParams

Signal = Literal["TERM", "KILL", "STOP", "CONT"]


class Request(msgspec.Struct, tag_field="call", kw_only=True, forbid_unknown_fields=True):
    """Base of every request; ``id`` ties replies and events to it."""

    id: int = 0


class Message(msgspec.Struct, forbid_unknown_fields=True):
    """One chat turn."""

    role: str
    content: str


class Hello(Request, tag="hello"):
    """First call on a connection: agree on the protocol version."""

    version: int
    client: str = ""


class Spawn(Request, tag="spawn"):
    """Start a process on ``model`` from a prompt, chat messages or token ids; reply: its pid.

    ``chat`` processes block in state ``waiting`` after each reply, keeping
    their KV pages, until ``write`` sends the next user turn. With ``stream``
    the call goes on to stream the process's events, as ``stream`` does.
    """

    model: str = "default"
    prompt: str | None = None
    messages: list[Message] | None = None
    token_ids: list[int] | None = None
    params: SamplingParams = SamplingParams()
    nice: int = 0
    chat: bool = False
    stream: bool = False


class Stream(Request, tag="stream"):
    """Subscribe to a process's text: from its first token, or only what comes next.

    The stream ends when the process exits or starts waiting for input.
    """

    pid: int
    from_start: bool = True


class Write(Request, tag="write"):
    """Send the next user turn to a waiting chat process and wake it.

    With ``stream`` the call streams the reply to this turn.
    """

    pid: int
    content: str
    stream: bool = False


class Wait(Request, tag="wait"):
    """Block until a process exits; reply with its status and text, and reap it."""

    pid: int
    timeout: float | None = None


class Kill(Request, tag="kill"):
    """Send a signal to a process (``TERM`` or ``KILL`` end it); only its owner or root."""

    pid: int
    signal: Signal = "TERM"


class Fork(Request, tag="fork"):
    """Fork a process into ``n`` children that share its KV pages (copy-on-write).

    Children continue from the parent's current token; ``params`` replaces
    their sampling parameters and ``seeds`` gives each child its own seed.
    Without either, a child draws the same random stream the parent would.
    """

    pid: int
    n: int = 1
    params: SamplingParams | None = None
    seeds: list[int] | None = None


class Renice(Request, tag="renice"):
    """Set a process's nice (-20 most favoured .. 19 least); below 0 needs root."""

    pid: int
    nice: int


class Sched(Request, tag="sched"):
    """Show the scheduling policy and per-uid service; with ``policy``, switch to it
    (the kernel's owner or root)."""

    policy: str | None = None


class Ps(Request, tag="ps"):
    """List processes: the caller's, or everyone's with ``all``."""

    all: bool = False


class Proc(Request, tag="proc"):
    """Everything the kernel knows about one process; ``pages`` adds its page map."""

    pid: int
    pages: bool = False


class Meminfo(Request, tag="meminfo"):
    """Host RAM, device memory and each model's KV pages, per tier."""


class Sysinfo(Request, tag="sysinfo"):
    """Version, driver, device, uptime and scheduling policy."""


class Models(Request, tag="models"):
    """The loaded models (``plugins`` lists the presets)."""


class Load(Request, tag="load"):
    """Load a model (a preset, a local path or a hub id) and keep it for ``keep_alive`` s."""

    model: str
    keep_alive: float | None = None


class Unload(Request, tag="unload"):
    """Unload a model that no live process uses."""

    model: str


class Call(Request, tag="call"):
    """Call a syscall a plugin added (``translate``, ``summarize``...); ``args`` is a
    msgpack map of its parameters, checked against the Struct the plugin declared."""

    name: str
    args: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"\x80"))


class Plugins(Request, tag="plugins"):
    """The loaded plugins, their hooks and the syscalls they add (like ``lsmod``)."""


class Shutdown(Request, tag="shutdown"):
    """Stop the kernel (owner or root). Running processes end with status ``shutdown``,
    or with ``hibernate`` are written to disk and resume in the next kernel; stopped
    processes are always hibernated."""

    hibernate: bool = False


REQUEST_TYPES: tuple[type[Request], ...] = (
    Hello,
    Spawn,
    Stream,
    Write,
    Wait,
    Kill,
    Fork,
    Renice,
    Sched,
    Ps,
    Proc,
    Meminfo,
    Sysinfo,
    Models,
    Load,
    Unload,
    Call,
    Plugins,
    Shutdown,
)
