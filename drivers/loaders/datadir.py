"""Where llmos keeps its data (converted model caches): one place to decide it."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_data_dir(explicit: Path | None = None) -> Path:
    """The data directory: ``explicit``, else ``$LLMOS_DATA_DIR``, else
    ``$XDG_DATA_HOME/llmos``, else ``~/.local/share/llmos``. Not created here."""
    if explicit is not None:
        return Path(explicit).expanduser()
    if env := os.environ.get("LLMOS_DATA_DIR"):
        return Path(env).expanduser()
    if xdg := os.environ.get("XDG_DATA_HOME"):
        return Path(xdg).expanduser() / "llmos"
    return Path.home() / ".local" / "share" / "llmos"
