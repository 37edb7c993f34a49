"""The demo project's defaults are safe outside ``make run`` (issue 16 §11): DEBUG only
when asked for, the demo superuser only for a loopback bind and its password only from
this machine, the secret key and the Django database readable by their owner only."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from django.contrib.auth import aauthenticate, authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory

from tests._servers import MANAGE, ROOT, migrate, server_env

_SHOW = (
    "import json, os; from django.conf import settings; "
    "print(json.dumps({'debug': settings.DEBUG}))"
)


def _settings_in(var_dir, extra=None) -> dict:
    env = server_env(var_dir, "config.settings", extra)
    env.pop("DJANGO_DEBUG", None)
    env.pop("DJANGO_SECRET_KEY", None)
    env.update(extra or {})
    done = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {_SHOW}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_debug_is_off_unless_asked_for(tmp_path):
    assert _settings_in(tmp_path / "a")["debug"] is False
    assert _settings_in(tmp_path / "b", {"DJANGO_DEBUG": "1"})["debug"] is True


def test_secret_key_and_database_are_created_owner_only_whatever_the_umask(tmp_path):
    var_dir = tmp_path / "var"
    old = os.umask(0o022)  # the common default, which makes new files world-readable
    try:
        migrate(var_dir)
    finally:
        os.umask(old)
    assert _mode(var_dir / "secret_key") == 0o600
    assert _mode(var_dir / "db.sqlite3") == 0o600
    for extra in ("db.sqlite3-wal", "db.sqlite3-shm"):
        if (var_dir / extra).exists():
            assert _mode(var_dir / extra) & 0o077 == 0, extra


def test_demo_superuser_refuses_a_public_bind(tmp_path):
    var_dir = tmp_path / "var"
    migrate(var_dir)
    env = server_env(var_dir, "config.settings")
    for bind, created in (("0.0.0.0", False), ("192.0.2.7", False), ("127.0.0.1", True)):
        done = subprocess.run(
            [sys.executable, str(MANAGE), "demo_superuser", "--bind", bind],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (done.returncode == 0) is created, (bind, done.stdout, done.stderr)
        assert ("Created demo superuser" in done.stdout) is created, bind


@pytest.mark.django_db
def test_demo_superuser_defaults_to_loopback_and_refuses_others():
    with pytest.raises(CommandError):
        call_command("demo_superuser", bind="::")
    assert not get_user_model().objects.exists()
    call_command("demo_superuser")  # make run's default, 127.0.0.1
    assert get_user_model().objects.filter(username="admin", is_superuser=True).exists()


@pytest.mark.django_db
def test_demo_password_logs_in_from_this_machine_only():
    get_user_model().objects.create_superuser("admin", "a@localhost", "admin")
    factory = RequestFactory()
    local = factory.post("/admin/login/", REMOTE_ADDR="127.0.0.1")
    remote = factory.post("/admin/login/", REMOTE_ADDR="203.0.113.9")
    assert authenticate(local, username="admin", password="admin") is not None
    assert authenticate(remote, username="admin", password="admin") is None
    # Any other password is Django's business as usual, from anywhere.
    user = get_user_model().objects.get(username="admin")
    user.set_password("a-real-password")
    user.save()
    assert authenticate(remote, username="admin", password="a-real-password") == user


@pytest.mark.django_db(transaction=True)
async def test_async_login_asks_the_guard_too():
    await get_user_model().objects.acreate_superuser("admin", "a@localhost", "admin")
    factory = RequestFactory()
    remote = factory.post("/admin/login/", REMOTE_ADDR="203.0.113.9")
    local = factory.post("/admin/login/", REMOTE_ADDR="127.0.0.1")
    assert await aauthenticate(remote, username="admin", password="admin") is None
    assert await aauthenticate(local, username="admin", password="admin") is not None
