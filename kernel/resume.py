"""Boot-time restore of hibernated processes: read each image, load its model, bring it back.

A file that cannot be read or fails a checksum (its header is checked
first, its pages as they are read into swap), or whose model cannot be
loaded, becomes a zombie with status ``error`` and the reason, so its owner
learns what happened; the kernel boots regardless. The file stays for
inspection until that zombie is reaped.
"""

from __future__ import annotations

import logging
from pathlib import Path

from llmos.kernel.engine_thread import EngineThread
from llmos.kernel.hibernate import CorruptImage, image_dir, read_image
from llmos.kernel.loader import ModelLoader
from llmos.kernel.own_thread import in_own_thread
from llmos.syscalls.errors import LlmosError

log = logging.getLogger("llmos.kernel")


async def restore_hibernated(
    engine_thread: EngineThread, loader: ModelLoader, data_dir: Path
) -> list[int]:
    """Restore every image under ``data_dir``; return the pids they occupy."""
    folder = image_dir(data_dir)
    paths = sorted(folder.glob("*.kv"), key=lambda p: p.stem) if folder.is_dir() else []
    pids = []
    for path in paths:
        pid = await restore_one(engine_thread, loader, path)
        if pid is not None:
            pids.append(pid)
    if pids:
        log.info("restored %d hibernated processes: %s", len(pids), pids)
    return pids


async def restore_one(engine_thread: EngineThread, loader: ModelLoader, path: Path) -> int | None:
    core = engine_thread.core
    try:
        file = await in_own_thread(read_image, path)
    except CorruptImage as exc:
        log.error("%s", exc.message)
        if not path.stem.isdigit():
            return None
        pid = int(path.stem)
        await engine_thread.call(core.restore_failed, pid, 0, "", exc.message)
        return pid
    image = file.image
    try:
        await loader.ensure(image.model)
        return await engine_thread.call(core.restore, file)
    except LlmosError as exc:
        log.error("cannot restore process %d: %s", image.pid, exc.message)
        error = f"restore failed: {exc.message}"
        await engine_thread.call(core.restore_failed, image.pid, image.uid, image.model, error)
        return image.pid
