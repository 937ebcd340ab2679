"""Who is calling: the peer's credentials of a Unix socket (``SO_PEERCRED``).

This is the one place the kernel learns a caller's uid; tests that need a
second user on a machine without one substitute :data:`Credentials` here.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable

Credentials = Callable[[socket.socket], int]
_UCRED = struct.Struct("3i")  # pid, uid, gid


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket."""
    if hasattr(socket, "SO_PEERCRED"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        _pid, uid, _gid = _UCRED.unpack(raw)
        return int(uid)
    # BSD/macOS: getpeereid is not exposed by Python; a local peer is at least us.
    return os.getuid()
