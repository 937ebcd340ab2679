"""The wire protocol: the request and reply unions, and codecs built once.

Clients send :data:`AnyRequest`; the kernel sends :data:`AnyReply` (replies,
stream events and errors). Both are tagged unions of msgspec Structs.
"""

from __future__ import annotations

from typing import Any

import msgspec

from llmos.syscalls.errors import (
    InvalidArgument,
    LlmosError,
    NotImplementedSyscall,
    ProtocolError,
)
from llmos.syscalls.events import ExitEvent, TokenEvent, WaitingEvent
from llmos.syscalls.replies import (
    CallResult,
    Error,
    Forked,
    HelloReply,
    Loaded,
    MeminfoReply,
    ModelsReply,
    Ok,
    PluginsReply,
    ProcReply,
    PsReply,
    Reply,
    SchedReply,
    Spawned,
    SysinfoReply,
    Waited,
)
from llmos.syscalls.requests import REQUEST_TYPES, Request

PROTOCOL_VERSION = 1

AnyRequest = Any  # the union below, typed loosely for mypy's sake
REPLY_TYPES: tuple[type[Reply], ...] = (
    Error,
    Ok,
    HelloReply,
    Spawned,
    Forked,
    ProcReply,
    PsReply,
    Waited,
    MeminfoReply,
    SysinfoReply,
    SchedReply,
    ModelsReply,
    Loaded,
    CallResult,
    PluginsReply,
    TokenEvent,
    WaitingEvent,
    ExitEvent,
)

KNOWN_CALLS = frozenset(t.__struct_config__.tag for t in REQUEST_TYPES)


class Envelope(msgspec.Struct):
    """The two fields every request has, read when the full decode fails."""

    id: int = 0
    call: str = ""


encoder = msgspec.msgpack.Encoder()


def _union(types: tuple[type[Any], ...]) -> Any:
    union: Any = types[0]
    for t in types[1:]:
        union = union | t
    return union


request_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(_union(REQUEST_TYPES))
reply_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(_union(REPLY_TYPES))
_envelope_decoder = msgspec.msgpack.Decoder(Envelope)


def encode(message: msgspec.Struct) -> bytes:
    """msgpack bytes of a request or reply (no length prefix)."""
    return encoder.encode(message)


def decode_request(payload: bytes) -> Request:
    """The request in ``payload``; a typed error (with the request id when readable) if not.

    An unknown ``call`` is ENOSYS; a known one with bad fields is EINVAL;
    anything that is not a request at all is EPROTO.
    """
    try:
        request: Request = request_decoder.decode(payload)
        return request
    except msgspec.ValidationError as exc:
        raise _classify(payload, exc) from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(0, ProtocolError(f"not a msgpack message: {exc}")) from exc
    except RecursionError as exc:
        raise BadRequest(0, ProtocolError("message nested too deeply")) from exc


def _classify(payload: bytes, exc: msgspec.ValidationError) -> BadRequest:
    try:
        envelope = _envelope_decoder.decode(payload)
    except (msgspec.MsgspecError, RecursionError):
        return BadRequest(0, ProtocolError(f"not a request: {exc}"))
    if not envelope.call:
        return BadRequest(envelope.id, ProtocolError("not a request: it has no `call`"))
    if envelope.call not in KNOWN_CALLS:
        error: LlmosError = NotImplementedSyscall(f"no such syscall: {envelope.call!r}")
        return BadRequest(envelope.id, error)
    return BadRequest(envelope.id, InvalidArgument(f"bad {envelope.call!r} request: {exc}"))


class BadRequest(Exception):
    """A request that could not be decoded: the id to answer and the error to send."""

    def __init__(self, request_id: int, error: LlmosError) -> None:
        super().__init__(str(error))
        self.request_id = request_id
        self.error = error


def error_reply(request_id: int, error: LlmosError) -> Error:
    """The wire form of a typed error."""
    return Error(id=request_id, code=error.code, message=error.message)


def decode_reply(payload: bytes) -> Reply:
    """A reply, event or error from the kernel; EPROTO if it is none of those."""
    try:
        reply: Reply = reply_decoder.decode(payload)
        return reply
    except msgspec.MsgspecError as exc:
        raise ProtocolError(f"bad message from the kernel: {exc}") from exc
