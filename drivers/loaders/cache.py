"""Cache of converted GGUF files, so only the first load pays for dequantization.

Layout under ``<data_dir>/models/``::

    index.json              (absolute path, size, mtime_ns) -> sha256, to skip re-hashing
    <sha256 of the gguf>/   an HF folder: model.safetensors (float32), config.json,
                            tokenizer.json, tokenizer_config.json, source.json

A cache folder is written under a temporary name and renamed into place, so a
crash never leaves a half-written one; ``source.json`` is checked on load and
a folder from another converter version is rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import save_file

from llmos.drivers.loaders.checkpoint import Checkpoint
from llmos.drivers.loaders.datadir import resolve_data_dir
from llmos.drivers.loaders.gguf import load_gguf
from llmos.drivers.loaders.hf import load_hf_folder
from llmos.syscalls.errors import BadModelFile

log = logging.getLogger(__name__)

# Bump when the conversion changes, so stale caches are rebuilt.
CACHE_VERSION = 1
INDEX_FILE = "index.json"
SOURCE_FILE = "source.json"


def load_gguf_cached(
    path: Path, data_dir: Path | None = None, name: str | None = None
) -> Checkpoint:
    """Load ``path`` from the cache if it was converted before, else convert and cache it."""
    path = Path(path).resolve()
    root = resolve_data_dir(data_dir) / "models"
    digest = file_sha256(path, root)
    folder = root / digest
    if _is_current(folder):
        try:
            checkpoint = load_hf_folder(folder, name or path.stem)
            return dataclasses.replace(checkpoint, source=path)
        except BadModelFile as exc:  # damaged on disk: convert again
            log.warning("rebuilding damaged cache %s: %s", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
    checkpoint = load_gguf(path, name)
    _write_cache(checkpoint, folder, {"gguf": str(path), "sha256": digest})
    return checkpoint


def cache_folder(path: Path, data_dir: Path | None = None) -> Path:
    """Where the converted copy of ``path`` lives (whether or not it exists yet)."""
    root: Path = resolve_data_dir(data_dir) / "models"
    return root / file_sha256(Path(path).resolve(), root)


def file_sha256(path: Path, root: Path) -> str:
    """SHA-256 of ``path``, remembered in ``root/index.json`` by (path, size, mtime)."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise BadModelFile(f"cannot read {path}: {exc}") from exc
    index = _read_index(root)
    entry = index.get(str(path))
    if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return str(entry["sha256"])
    digest = _hash_file(path)
    index[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    _write_json_atomic(root / INDEX_FILE, index)
    return digest


def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
    except OSError as exc:
        raise BadModelFile(f"cannot read {path}: {exc}") from exc
    return hasher.hexdigest()


def _read_index(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / INDEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no index yet, or a damaged one: it is only a shortcut
    return data if isinstance(data, dict) else {}


def _is_current(folder: Path) -> bool:
    try:
        source = json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(source, dict) and source.get("cache_version") == CACHE_VERSION


def _write_cache(checkpoint: Checkpoint, folder: Path, source: dict[str, Any]) -> None:
    """Write the HF folder for ``checkpoint``; a failure only costs the next load time."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        _write_hf_folder(checkpoint, staging, {**source, "cache_version": CACHE_VERSION})
        if _is_current(folder):
            return  # another process converted the same file meanwhile: keep theirs
        shutil.rmtree(folder, ignore_errors=True)  # from an older converter, if any
        os.replace(staging, folder)
    except (OSError, SafetensorError) as exc:
        log.warning("could not cache %s in %s: %s", source.get("gguf"), folder, exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_hf_folder(checkpoint: Checkpoint, folder: Path, source: dict[str, Any]) -> None:
    tensors = {name: t.float().contiguous() for name, t in checkpoint.tensors.items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = dataclasses.asdict(checkpoint.config)
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    checkpoint.tokenizer.save(folder)
    # Last, so a folder with source.json is always complete.
    (folder / SOURCE_FILE).write_text(json.dumps(source, indent=2), encoding="utf-8")


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        log.warning("could not update %s: %s", path, exc)
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not update %s: %s", path, exc)
        Path(tmp).unlink(missing_ok=True)
