"""Framing: each message is a 4-byte big-endian length, then that many bytes of msgpack.

A frame longer than the reader's limit, or a stream that ends inside a frame,
loses the framing: the connection that sent it is closed. Everything inside a
well-formed frame is the decoder's business (a bad message gets an error reply).
"""

from __future__ import annotations

import asyncio
import socket
import struct

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 16 * 1024 * 1024


class FramingError(Exception):
    """The byte stream no longer splits into frames; close the connection."""


def frame(payload: bytes) -> bytes:
    """``payload`` with its length prefix."""
    return HEADER.pack(len(payload)) + payload


def check_length(length: int, max_frame: int) -> None:
    if length > max_frame:
        raise FramingError(f"frame of {length} bytes exceeds the {max_frame}-byte limit")


async def read_frame(reader: asyncio.StreamReader, max_frame: int) -> bytes | None:
    """The next frame's payload; None at a clean end of stream (between frames)."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FramingError("stream ended inside a frame header") from exc
        return None
    (length,) = HEADER.unpack(header)
    check_length(length, max_frame)
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise FramingError(f"stream ended {length - len(exc.partial)} bytes short") from exc


def recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    """Exactly ``size`` bytes from a blocking socket; None on EOF before any byte."""
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            if not chunks:
                return None
            raise FramingError("stream ended inside a frame")
        chunks += chunk
    return bytes(chunks)


def recv_frame(sock: socket.socket, max_frame: int) -> bytes | None:
    """The blocking twin of :func:`read_frame`."""
    header = recv_exactly(sock, HEADER.size)
    if header is None:
        return None
    (length,) = HEADER.unpack(header)
    check_length(length, max_frame)
    if length == 0:
        return b""
    payload = recv_exactly(sock, length)
    if payload is None:
        raise FramingError("stream ended inside a frame")
    return payload
