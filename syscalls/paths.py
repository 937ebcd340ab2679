"""Where the kernel's socket lives; shared by the kernel and its clients.

``$LLMOS_SOCKET``, else ``$XDG_RUNTIME_DIR/llmos/kernel.sock``, else
``/tmp/llmos-$UID/kernel.sock``. The pidfile sits next to the socket.
"""

from __future__ import annotations

import os
from pathlib import Path

# sun_path holds 108 bytes on Linux, 104 on macOS; stay under both.
MAX_SOCKET_PATH = 100


def default_socket_path() -> Path:
    """The socket path clients and the kernel agree on when none is given."""
    explicit = os.environ.get("LLMOS_SOCKET")
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "llmos" / "kernel.sock"
    return Path(f"/tmp/llmos-{os.getuid()}") / "kernel.sock"


def pidfile_path(socket_path: Path) -> Path:
    """The pidfile that goes with ``socket_path``."""
    return socket_path.with_name(socket_path.name + ".pid")
