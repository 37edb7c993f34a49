"""A logged-in HTTP session against a real server: cookies, CSRF token, JSON."""

from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests._servers import MANAGE, ROOT, HttpResult, server_env


def create_superuser(var_dir: Path, settings: str, username: str, password: str) -> None:
    """A superuser in the Django database of ``var_dir`` (shared by a cluster's servers)."""
    code = (
        "from django.contrib.auth import get_user_model;"
        f"get_user_model().objects.create_superuser({username!r}, 'x@localhost', {password!r})"
    )
    subprocess.run(
        [sys.executable, str(MANAGE), "shell", "-c", code],
        cwd=ROOT,
        env=server_env(var_dir, settings),
        check=True,
        capture_output=True,
        timeout=60,
    )


class Session:
    """Requests to one base URL sharing a cookie jar (session and CSRF cookies)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.jar)
        )

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def request(
        self, method: str, path: str, data: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, bytes]:
        req = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers or {}
        )
        try:
            with self.opener.open(req, timeout=15) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, method: str, path: str) -> HttpResult:
        """A JSON API call, with the CSRF token on unsafe methods."""
        headers = {}
        if method not in ("GET", "HEAD"):
            headers["X-CSRFToken"] = self.cookie("csrftoken") or ""
        status, raw = self.request(method, path, b"" if method != "GET" else None, headers)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        return HttpResult(status, body)

    def login(self, username: str, password: str) -> None:
        """Log in through the admin's login form (session cookie, CSRF cookie)."""
        status, page = self.request("GET", "/admin/login/")
        assert status == 200, page[:500]
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        form = urllib.parse.urlencode(
            {
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": token,
                "next": "/admin/",
            }
        ).encode()
        status, page = self.request(
            "POST",
            "/admin/login/",
            form,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 200 and self.cookie("sessionid"), (status, page[:500])
