"""What the blocking and the asyncio clients share: building calls and reading their answers.

Neither client holds protocol logic of its own. Both keep a :class:`Router`
(the calls in flight on one connection, by request id), build requests with
the helpers here, check plain replies with :func:`expect`, and find the pid a
stream follows with :func:`stream_pid`.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from llmos.syscalls.errors import (
    InvalidArgument,
    KernelUnavailable,
    LlmosError,
    ProtocolError,
    error_from_code,
)
from llmos.syscalls.protocol import PROTOCOL_VERSION, decode_reply
from llmos.syscalls.replies import CallResult, Error, Ok, Reply, Spawned, Waited
from llmos.syscalls.requests import Call, Hello, Message, Spawn, Stream, Write
from llmos.syscalls.sampling import SamplingParams

R = TypeVar("R", bound=Reply)
MessageLike = Message | Mapping[str, str]
StreamRequest = Spawn | Stream | Write
SAMPLING_FIELDS = frozenset(SamplingParams.__struct_fields__)


class Inbox(Protocol):
    """Where the router puts a call's messages: a ``queue.Queue`` or an ``asyncio.Queue``."""

    def put_nowait(self, item: Reply, /) -> None:
        """Queue one message without blocking."""


Q = TypeVar("Q", bound=Inbox)


class _Envelope(msgspec.Struct):
    id: int = 0


_envelope_decoder = msgspec.msgpack.Decoder(_Envelope)


class Router(Generic[Q]):
    """The calls in flight on one connection: a fresh id and an inbox for each.

    Messages for an id nobody listens to (a call that timed out, a stream
    closed early) are dropped. Once the connection is closed every inbox gets
    an ``EINTR`` error, and opening a call raises :class:`Interrupted`.
    """

    def __init__(self, make_inbox: Callable[[], Q]) -> None:
        self._make_inbox = make_inbox
        self._ids = itertools.count(1)  # 0 answers requests the kernel could not read
        self._inboxes: dict[int, Q] = {}
        self._lock = threading.Lock()
        self._closed_reason: str | None = None

    @property
    def is_closed(self) -> bool:
        """Whether the connection is gone (no call can be opened)."""
        return self._closed_reason is not None

    def open(self) -> tuple[int, Q]:
        """A fresh request id and the inbox its answers will land in."""
        with self._lock:
            if self._closed_reason is not None:
                raise error_from_code("EINTR", self._closed_reason)
            request_id = next(self._ids)
            inbox = self._inboxes[request_id] = self._make_inbox()
        return request_id, inbox

    def drop(self, request_id: int) -> None:
        """Stop listening for ``request_id``; later messages for it are discarded."""
        with self._lock:
            self._inboxes.pop(request_id, None)

    def deliver(self, payload: bytes) -> None:
        """Route one frame from the kernel to its call; a bad message becomes EPROTO there."""
        try:
            message = decode_reply(payload)
        except ProtocolError as exc:
            message = Error(id=_request_id(payload), code=exc.code, message=exc.message)
        with self._lock:
            inbox = self._inboxes.get(message.id)
        if inbox is not None:
            inbox.put_nowait(message)

    def close(self, reason: str) -> None:
        """End every call in flight with EINTR (``reason``); the first reason given sticks."""
        with self._lock:
            if self._closed_reason is None:
                self._closed_reason = reason
            inboxes, self._inboxes = self._inboxes, {}
        for request_id, inbox in inboxes.items():
            inbox.put_nowait(Error(id=request_id, code="EINTR", message=reason))


def _request_id(payload: bytes) -> int:
    try:
        return _envelope_decoder.decode(payload).id
    except msgspec.MsgspecError:
        return 0


def unavailable(path: os.PathLike[str], exc: OSError) -> KernelUnavailable:
    """The error for a failed connect to ``path``."""
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return KernelUnavailable(f"no kernel is listening on {path}; start one with `llmosctl up`")
    return KernelUnavailable(f"cannot connect to the kernel at {path}: {exc}")


def hello_request(name: str) -> Hello:
    """The handshake every connection starts with."""
    return Hello(version=PROTOCOL_VERSION, client=name)


def raise_if_error(reply: Reply) -> Reply:
    """``reply``, unless it is an :class:`Error`: then its typed exception."""
    if isinstance(reply, Error):
        raise error_from_code(reply.code, reply.message)
    return reply


def expect(reply: Reply, kind: type[R]) -> R:
    """``reply`` as a ``kind``; its typed error if it is one, EPROTO if it is anything else."""
    raise_if_error(reply)
    if not isinstance(reply, kind):
        raise ProtocolError(f"expected a {kind.__name__} reply, got {type(reply).__name__}")
    return reply


def sampling_params(params: SamplingParams | None, sampling: Mapping[str, Any]) -> SamplingParams:
    """``params`` (or the defaults) with the ``sampling`` fields set over it, type-checked."""
    base = params or SamplingParams()
    unknown = sorted(set(sampling) - SAMPLING_FIELDS)
    if unknown:
        known = ", ".join(sorted(SAMPLING_FIELDS))
        raise InvalidArgument(f"unknown sampling parameter(s) {unknown}; known: {known}")
    if not sampling:
        return base
    fields = msgspec.structs.asdict(base) | dict(sampling)
    try:
        return msgspec.convert(fields, SamplingParams)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"bad sampling parameter: {exc}") from exc


def chat_messages(messages: Sequence[MessageLike] | None) -> list[Message] | None:
    """``messages`` as :class:`Message` structs; dicts need ``role`` and ``content``."""
    if messages is None:
        return None
    try:
        return [m if isinstance(m, Message) else msgspec.convert(m, Message) for m in messages]
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"bad chat message: {exc}") from exc


def spawn_request(
    prompt: str | None,
    *,
    model: str,
    messages: Sequence[MessageLike] | None,
    token_ids: Sequence[int] | None,
    params: SamplingParams | None,
    nice: int,
    chat: bool,
    stream: bool,
    sampling: Mapping[str, Any],
) -> Spawn:
    """The :class:`Spawn` request for the keyword arguments of ``spawn`` and ``run``."""
    return Spawn(
        model=model,
        prompt=prompt,
        messages=chat_messages(messages),
        token_ids=None if token_ids is None else list(token_ids),
        params=sampling_params(params, sampling),
        nice=nice,
        chat=chat,
        stream=stream,
    )


def wait_timeout(connection_timeout: float | None, timeout: float | None) -> float | None:
    """How long a client waits for ``wait``'s reply: the kernel's limit plus the connection's.

    A process may rightly run for longer than any reply takes, so without a
    ``wait`` timeout the client waits as long as the kernel does.
    """
    if timeout is None or connection_timeout is None:
        return None
    return timeout + connection_timeout


def waited_text(waited: Waited) -> str:
    """The text of a process that ended; its error if it ended with status ``error``."""
    if waited.proc.exit_status == "error":
        raise LlmosError(waited.proc.error or f"process {waited.proc.pid} failed")
    return waited.text


def stream_pid(request: StreamRequest, head: Reply) -> int:
    """The pid a streaming call follows, from its first reply.

    ``spawn`` answers :class:`Spawned`; ``stream`` and ``write`` answer :class:`Ok`.
    """
    if isinstance(request, Spawn):
        return expect(head, Spawned).pid
    expect(head, Ok)
    return request.pid


def plugin_call(name: str, args: Mapping[str, Any]) -> Call:
    """The request for plugin syscall ``name`` with keyword ``args`` (None values dropped)."""
    given = {key: value for key, value in args.items() if value is not None}
    try:
        payload = msgspec.msgpack.encode(given)
    except TypeError as exc:
        raise InvalidArgument(f"arguments of {name} cannot be sent: {exc}") from None
    return Call(name=name, args=msgspec.Raw(payload))


def plugin_result(reply: Reply) -> dict[str, Any]:
    """The decoded result of a plugin syscall."""
    result = expect(reply, CallResult)
    decoded = msgspec.msgpack.decode(result.result)
    if not isinstance(decoded, dict):
        raise ProtocolError(f"{result.name} returned a {type(decoded).__name__}, not a map")
    return decoded
