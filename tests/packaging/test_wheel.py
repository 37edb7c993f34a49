"""The built distribution: durable_core alone, with everything it needs at run time."""

from __future__ import annotations

import email
import zipfile
from pathlib import Path

import durable_core

from .conftest import ROOT


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_the_wheel_installs_durable_core_and_no_demo_packages(wheel: Path):
    """No top-level config or apps: an adopting project has its own config package."""
    tops = {name.split("/")[0] for name in _names(wheel)}
    assert tops == {"durable_core", f"durable_django-{durable_core.__version__}.dist-info"}


def test_the_wheel_holds_every_file_of_the_package_templates_migrations_and_py_typed(
    wheel: Path,
):
    """Every non-Python file in durable_core (templates, static files, py.typed) and every
    migration is in the wheel: a file missing there is a page or a table missing for users."""
    names = set(_names(wheel))
    package = ROOT / "durable_core"
    expected = {
        path.relative_to(ROOT).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert expected - names == set()
    assert "durable_core/py.typed" in names
    assert any(n.startswith("durable_core/templates/admin/") for n in names)
    assert "durable_core/migrations/0001_initial.py" in names


def test_the_wheel_says_its_version_license_and_supported_ranges(wheel: Path):
    metadata = _metadata(wheel)
    assert metadata["Version"] == durable_core.__version__
    assert metadata["License-Expression"] == "MIT"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in _names(wheel))
    assert metadata["Requires-Python"] == ">=3.11"
    requires = metadata.get_all("Requires-Dist")
    assert any(r.startswith("Django") and "<5.3" in r for r in requires)
    assert not any(r.startswith("pycrdt") and "extra" not in r for r in requires)
