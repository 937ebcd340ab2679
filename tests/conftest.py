"""Suite-wide guards: no test touches the user's llmos data directory, and only the
built-in plugins load."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos.plugins.manager import DEFAULT_PLUGINS

BUILTIN_PLUGINS = tuple(module.rsplit(".", 1)[-1] for module in DEFAULT_PLUGINS)


def pytest_configure(config: pytest.Config) -> None:
    """The built-in plugins only, never whatever else is installed: set before collection,
    since importing the CLI already loads plugins' commands."""
    os.environ["LLMOS_PLUGINS"] = ",".join(BUILTIN_PLUGINS)


@pytest.fixture(autouse=True, scope="session")
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    patch.setenv("LLMOS_DATA_DIR", str(tmp_path_factory.mktemp("llmos-data")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Llama (ChatML tokenizer) as an HF folder: boots a kernel in a second."""
    from tinymodels import make_tiny_hf_model

    return make_tiny_hf_model(tmp_path_factory.mktemp("tiny-llama"), "llama")
