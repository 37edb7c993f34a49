"""Logged-in sessions for tests against a real server: users made with ``manage.py shell``
in the server's VAR_DIR, sessions created in its database (no login form involved)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests._servers import MANAGE, ROOT, server_env

_SCRIPT = """
import json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.middleware.csrf import _get_new_csrf_string
User = get_user_model()
user, _ = User.objects.get_or_create(username={name!r}, defaults={{"is_staff": {staff!r}}})
user.is_staff = {staff!r}
user.set_password("pw-" + {name!r})
user.save()
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
cookies = {{"sessionid": session.session_key, "csrftoken": _get_new_csrf_string()}}
print("SESSION=" + json.dumps(cookies))
"""


def make_session(
    var_dir: Path, name: str, *, staff: bool, settings: str = "config.settings"
) -> dict:
    """Cookies ``{"sessionid", "csrftoken"}`` of a fresh session of user ``name``; send the
    csrftoken cookie and the same value in ``X-CSRFToken`` on unsafe requests."""
    done = subprocess.run(
        [sys.executable, str(MANAGE), "shell", "-c", _SCRIPT.format(name=name, staff=staff)],
        cwd=ROOT,
        env=server_env(var_dir, settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    for line in done.stdout.splitlines():
        if line.startswith("SESSION="):
            return json.loads(line.removeprefix("SESSION="))
    raise RuntimeError(f"could not make a session ({done.returncode}):\n{done.stdout}{done.stderr}")
