"""Security checks: staff-only routes, CSRF, cross-origin WebSockets, namespace-bound IDs,
and no pickle/eval/exec/marshal anywhere in durable_core or the apps.

Each refusal is paired with the same request succeeding where it should (staff, same
origin, the right namespace, the CSRF token), so that a check cannot pass merely because
the route is broken.
"""

from __future__ import annotations

import re
import urllib.parse
from itertools import permutations
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from durable_core.exceptions import InvalidObjectId
from durable_core.registry import get_namespace, get_registered_classes
from tests._servers import ROOT, ServerProcess, http, running_server

from ._routes import sample_path
from ._staff import make_session

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> ServerProcess:
    """The demo project (config.settings, embedded) on a free loopback port."""
    with running_server(tmp_path_factory.mktemp("security")) as made:
        yield made


@pytest.fixture(scope="module")
def sessions(server) -> dict[str, dict]:
    return {
        "staff": make_session(server.var_dir, "sec-staff", staff=True),
        "user": make_session(server.var_dir, "sec-user", staff=False),
    }


def _cookie(session: dict) -> dict[str, str]:
    return {"Cookie": f"sessionid={session['sessionid']}; csrftoken={session['csrftoken']}"}


_VALUES = {"namespace": "demo.Counter", "object_id": "0" * 64}


def _staff_get_routes(server: ServerProcess) -> list[str]:
    """Concrete GET paths of the staff-only operations in the OpenAPI schema."""
    schema = http("GET", f"{server.url}/api/openapi.json").body
    paths = []
    for path, methods in schema["paths"].items():
        if not path.startswith(("/api/objects", "/api/hosts")) or "get" not in methods:
            continue
        paths.append(re.sub(r"{(\w+)}", lambda m: _VALUES.get(m.group(1), "x"), path))
    return paths


def test_staff_routes_refuse_anonymous_and_non_staff_users(server, sessions):
    """Every GET under /api/objects and /api/hosts: 401/403 anonymously, 403 for a
    logged-in user without is_staff, and not refused for staff."""
    routes = _staff_get_routes(server)
    assert "/api/hosts/" in routes and "/api/objects/" in routes, routes
    for path in routes:
        anonymous = http("GET", server.url + path)
        assert anonymous.status in (401, 403), (path, anonymous)
        assert isinstance(anonymous.body, dict) and "error" in anonymous.body, anonymous
        user = http("GET", server.url + path, headers=_cookie(sessions["user"]))
        assert user.status == 403, (path, user)
        staff = http("GET", server.url + path, headers=_cookie(sessions["staff"]))
        assert staff.status not in (401, 403), (path, staff)
    assert http("GET", server.url + "/api/hosts/", headers=_cookie(sessions["staff"])).status == 200


def test_staff_unsafe_methods_need_the_csrf_token(server, sessions):
    """A staff session without the CSRF token cannot evict (403); with it, it can."""
    object_id = get_namespace("demo.Counter").new_unique_id().hex  # any well-formed ID
    path = f"{server.url}/api/objects/demo.Counter/{object_id}/evict"
    cookie = _cookie(sessions["staff"])
    refused = http("POST", path, {}, headers=cookie)
    assert refused.status == 403, refused
    with_token = {**cookie, "X-CSRFToken": sessions["staff"]["csrftoken"], "Referer": server.url}
    allowed = http("POST", path, {}, headers=with_token)
    assert allowed.status != 403 and allowed.status < 500, allowed


def test_admin_login_form_without_csrf_token_is_refused(server):
    """POST /admin/login/ without the CSRF cookie and token: 403; the form itself is served
    with a token."""
    form = urllib.parse.urlencode({"username": "admin", "password": "admin"})
    refused = _post_form(server.url + "/admin/login/", form)
    assert refused == 403
    page = http("GET", server.url + "/admin/login/")
    assert page.status == 200 and "csrfmiddlewaretoken" in str(page.body)


def _post_form(url: str, form: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url,
        data=form.encode(),
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_cross_origin_websocket_connects_are_refused(server):
    """Every WebSocket route of config/routing.py refuses Origin http://evil.example at
    the handshake (403, AllowedHostsOriginValidator); the server's own origin gets in."""
    from config.routing import websocket_urlpatterns

    assert websocket_urlpatterns, "no WebSocket routes in config/routing.py"
    for pattern in websocket_urlpatterns:
        url = f"ws://127.0.0.1:{server.port}{sample_path(pattern.pattern, 'sec-test')}"
        with pytest.raises(InvalidStatus) as refused:
            connect(url, origin="http://evil.example", open_timeout=10).close()
        assert refused.value.response.status_code == 403, url
        if "<" not in str(pattern.pattern):
            continue  # a catch-all that refuses every path: no same-origin control
        with connect(url, origin=f"http://127.0.0.1:{server.port}", open_timeout=10):
            pass  # the handshake went through (the object may close it afterwards)


def test_ids_of_one_namespace_are_refused_by_every_other():
    """id_from_string: an ID minted in one namespace is InvalidObjectId in every other
    registered namespace, and parses in its own."""
    names = sorted(get_registered_classes())
    assert len(names) >= 2, names
    for own, other in permutations(names, 2):
        minted = get_namespace(own).new_unique_id().hex
        assert get_namespace(own).id_from_string(minted).hex == minted
        with pytest.raises(InvalidObjectId):
            get_namespace(other).id_from_string(minted)
        named = get_namespace(own).id_from_name("shared-name").hex
        with pytest.raises(InvalidObjectId):
            get_namespace(other).id_from_string(named)


def test_a_chat_room_id_is_not_a_document_or_a_counter_over_http(server, sessions):
    """A private chat room ID (from POST /api/chat/rooms) opens its room, but as a
    document name or as a demo.Counter object ID it is refused with 404/400."""
    created = http("POST", f"{server.url}/api/chat/rooms", {})
    assert created.status == 201, created
    room = created.body["room"]
    assert http("GET", f"{server.url}/api/chat/rooms/{room}").status == 200
    assert http("GET", f"{server.url}/api/documents/{room}").status == 404
    staff = _cookie(sessions["staff"])
    inspected = http("GET", f"{server.url}/api/objects/demo.Counter/{room}", headers=staff)
    assert inspected.status in (400, 404), inspected
    inspected_right = http("GET", f"{server.url}/api/objects/chat.Room/{room}", headers=staff)
    assert inspected_right.status == 200, inspected_right


FORBIDDEN = re.compile(r"\bpickle\b|\bcPickle\b|\bmarshal\b|\beval\(|\bexec\(|__import__\(")


def test_no_pickle_eval_exec_or_marshal_in_data_paths():
    """No Python file of durable_core or apps uses pickle, marshal, eval, exec or
    __import__ (data is JSON only; nothing received is ever executed)."""
    files = [*(ROOT / "durable_core").rglob("*.py"), *(ROOT / "apps").rglob("*.py")]
    assert len(files) > 20, files
    hits = []
    for path in files:
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            if FORBIDDEN.search(line.split("#", 1)[0]):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "\n".join(hits)
