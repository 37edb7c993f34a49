"""scripts/system-packages.sh, which `make test` runs first: a user who cannot install
is told what to install instead of meeting failing tests."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .conftest import ROOT

SCRIPT = ROOT / "scripts" / "system-packages.sh"
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to become nobody"
)
def test_without_root_or_sudo_it_names_the_packages_and_the_command_and_fails():
    done = subprocess.run(
        [*AS_NOBODY, "sh", str(SCRIPT), "python3-venv", "redis-server"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},  # no sudo on this PATH
    )
    assert done.returncode == 1
    assert "sudo apt-get install -y python3-venv redis-server" in done.stderr
    assert "SKIP_SYSTEM_PACKAGES=1" in done.stderr


def test_with_nothing_missing_it_does_nothing_quickly():
    """The packages make test needs are installed here (it ran before this test)."""
    done = subprocess.run(["sh", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stderr) == (0, "")


def test_skip_system_packages_skips_even_named_packages():
    done = subprocess.run(
        ["sh", str(SCRIPT), "no-such-package"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SKIP_SYSTEM_PACKAGES": "1"},
    )
    assert (done.returncode, done.stderr) == (0, "")
