"""The demo keeps its styles with DEBUG off (config/asgi.py serves static files)."""

from __future__ import annotations

import urllib.request

from tests._servers import running_server

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_pages_and_their_stylesheet_are_served_with_debug_off(tmp_path):
    with running_server(tmp_path, env={"DJANGO_DEBUG": "0"}) as server:
        with _opener.open(f"{server.url}/", timeout=10) as home:
            page = home.read().decode()
        assert "/static/site/site.css" in page
        with _opener.open(f"{server.url}/static/site/site.css", timeout=10) as css:
            assert css.status == 200
            assert css.headers["Content-Type"].startswith("text/css")
            assert len(css.read()) > 100
        with _opener.open(f"{server.url}/static/admin/css/base.css", timeout=10) as admin:
            assert admin.status == 200
