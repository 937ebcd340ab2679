"""Packaging: top-level folders map to ``llmos.*`` subpackages, editable and in a wheel.

The folders are mapped by hand in pyproject.toml's ``[tool.setuptools]``. An
editable install finds a new subfolder on its own, but a wheel ships only the
packages listed there, so a forgotten entry only shows once installed for
real; these tests catch it here.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# Source folder -> the import name it is installed as.
TOP_FOLDERS = {
    "llmos": "llmos",
    "kernel": "llmos.kernel",
    "syscalls": "llmos.syscalls",
    "drivers": "llmos.drivers",
    "plugins": "llmos.plugins",
}
KNOWN_PACKAGES = {
    "llmos.kernel": "kernel",
    "llmos.syscalls": "syscalls",
    "llmos.drivers": "drivers",
    "llmos.drivers.torch": "drivers/torch",
    "llmos.drivers.loaders": "drivers/loaders",
    "llmos.plugins": "plugins",
}
REQUIRED_IN_WHEEL = [
    "llmos/__init__.py",
    "llmos/kernel/__init__.py",
    "llmos/syscalls/errors.py",
    "llmos/drivers/torch/__init__.py",
    "llmos/drivers/loaders/__init__.py",
    "llmos/drivers/torch/csrc/paged_decode.c",  # package data: the native kernels' sources
    "llmos/drivers/torch/csrc/fused_ops.c",
    "llmos/drivers/torch/csrc/storage.h",
]
FIX_HINT = "list them in [tool.setuptools] packages (and package-dir) in pyproject.toml"


def source_packages(root: Path = REPO) -> dict[str, Path]:
    """Every package folder under ``root`` (one with an ``__init__.py``), by import name."""
    packages = {}
    for folder, root_name in TOP_FOLDERS.items():
        for init in sorted((root / folder).rglob("__init__.py")):
            relative = init.parent.relative_to(root / folder)
            packages[".".join([root_name, *relative.parts])] = init.parent
    return packages


def wheel_path(source: Path, root: Path) -> str:
    """Where a file of a package folder under ``root`` lands inside the wheel."""
    for folder, root_name in TOP_FOLDERS.items():
        if source.is_relative_to(root / folder):
            relative = source.relative_to(root / folder)
            return "/".join([*root_name.split("."), *relative.parts])
    raise AssertionError(f"{source} is outside the package folders")


@dataclass(frozen=True)
class BuiltWheel:
    """A wheel and the snapshot of the tree it was built from."""

    path: Path
    source: Path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> BuiltWheel:
    """A wheel built offline, without build isolation, from a snapshot of the tree.

    The snapshot keeps ``build/`` and the egg-info out of the shared checkout,
    and gives the checks a tree that cannot change under them mid-test.
    """
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, source / name)
    for folder in TOP_FOLDERS:
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    command += ["--no-index", "-w", str(out), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"wheel build failed:\n{result.stdout}\n{result.stderr}"
    (built,) = out.glob("llmos-*.whl")
    return BuiltWheel(path=built, source=source)


@pytest.mark.parametrize(("name", "folder"), sorted(KNOWN_PACKAGES.items()))
def test_known_folders_are_subpackages(name: str, folder: str) -> None:
    assert (REPO / folder / "__init__.py").is_file(), f"{folder}/ is not a package"
    assert name in source_packages()


def test_editable_install_maps_every_folder() -> None:
    for name, folder in source_packages().items():
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, f"{name} is not importable"
        assert Path(spec.origin).parent == folder, f"{name} resolves to {spec.origin}"


def test_wheel_holds_every_package_and_module(wheel: BuiltWheel) -> None:
    names = set(zipfile.ZipFile(wheel.path).namelist())
    assert not [path for path in REQUIRED_IN_WHEEL if path not in names]
    packages = source_packages(wheel.source)
    missing_packages = [
        name
        for name, folder in packages.items()
        if wheel_path(folder / "__init__.py", wheel.source) not in names
    ]
    assert not missing_packages, f"packages missing from the wheel: {missing_packages}; {FIX_HINT}"
    missing_modules = [
        wheel_path(module, wheel.source)
        for folder in packages.values()
        for module in folder.glob("*.py")
        if wheel_path(module, wheel.source) not in names
    ]
    assert not missing_modules, f"modules missing from the wheel: {missing_modules}"


# Runs in a fresh interpreter: drops the editable finder, which would otherwise
# serve any subpackage the wheel lacks straight from the checkout, then checks
# every package comes from the unpacked wheel.
IMPORT_FROM_WHEEL = """
import importlib, json, sys
root, names = sys.argv[1], json.loads(sys.argv[2])
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path.insert(0, root)
for name in names:
    module = importlib.import_module(name)
    assert module.__file__.startswith(root + "/"), f"{name} from {module.__file__}"
"""


def test_wheel_imports_on_its_own(wheel: BuiltWheel, tmp_path: Path) -> None:
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel.path).extractall(unpacked)
    names = json.dumps(sorted(source_packages(wheel.source)))
    # -I: no PYTHONPATH, no user site, no working directory on sys.path.
    command = [sys.executable, "-I", "-c", IMPORT_FROM_WHEEL, str(unpacked), names]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
