"""Suite-wide guards: no test touches the user's llmos data directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    patch.setenv("LLMOS_DATA_DIR", str(tmp_path_factory.mktemp("llmos-data")))
    yield
    patch.undo()
