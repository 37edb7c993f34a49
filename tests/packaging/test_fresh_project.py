"""The wheel in a fresh virtualenv, adopted by a project made by ``django-admin
startproject`` exactly as the README's install section says (CONTRACT § Adopting
durable_core): migrate, check, a pytest using ``durable_host``, and the project served by
uvicorn (and by runserver) answering an object call.

Slow: it installs the wheel's dependencies from the package index into a new venv.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# The README's install section, as a new user types it (tested: keep the two in step).
OBJECTS = """
from durable_core.objects import DurableObject


class Counter(DurableObject):
    namespace = "shop.Counter"

    async def increment(self, by: int = 1) -> int:
        n = self.storage.get("n", 0) + by
        self.storage.put("n", n)
        return n
"""

VIEWS = """
from django.http import JsonResponse

from durable_core.registry import get_namespace


async def hit(request, name):
    counter = get_namespace("shop.Counter").get_by_name(name)
    return JsonResponse({"name": name, "value": await counter.increment()})
"""

TEST = """
from durable_core.registry import get_namespace


async def test_counter(durable_host):
    counter = get_namespace("shop.Counter").get_by_name("hits")
    assert await counter.increment(by=2) == 2
    assert await counter.increment() == 3
"""

URLS = """
from django.contrib import admin
from django.urls import include, path

from shop.views import hit

urlpatterns = [
    path("admin/", admin.site.urls),
    path("durable/", include("durable_core.urls")),
    path("hit/<str:name>", hit),
]
"""

PYTEST_INI = """
[pytest]
DJANGO_SETTINGS_MODULE = mysite.settings
asyncio_mode = auto
"""

ASGI = """
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_application = get_asgi_application()

from durable_core.asgi import DurableLifespan  # noqa: E402

application = DurableLifespan(django_application)
"""


def _run(args: list, cwd: Path, env: dict, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{output}"
    return output


class Project:
    """A virtualenv with the wheel installed and a startproject-made project using it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venv = root / "venv"
        self.dir = root / "mysite"
        self.bin = self.venv / "bin"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DURABLE_", "DJANGO_", "PYTHON", "VIRTUAL_ENV", "VAR_DIR"))
        }
        self.env["PATH"] = f"{self.bin}:{os.environ.get('PATH', '')}"
        # No .pyc: a settings file edited and restored within one second at the same size
        # would otherwise be read from the stale cache.
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"

    def run(self, *args: object, timeout: float = 300) -> str:
        return _run(list(args), self.dir, self.env, timeout)

    def manage(self, *args: str, timeout: float = 300) -> str:
        return self.run(self.bin / "python", "manage.py", *args, timeout=timeout)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _interpreters() -> list[str]:
    """This Python and every other supported one found here (pyenv's, by version)."""
    found = [sys.executable]
    for minor in (12, 13):
        candidates = [shutil.which(f"python3.{minor}")]
        candidates += sorted(
            glob.glob(os.path.expanduser(f"~/.pyenv/versions/3.{minor}.*/bin/python3"))
        )
        for candidate in filter(None, candidates):
            check = subprocess.run([candidate, "--version"], capture_output=True, timeout=30)
            if check.returncode == 0:
                found.append(candidate)
                break
    return found


def _version(python: str) -> str:
    done = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module", params=_interpreters(), ids=_version)
def project(
    request: pytest.FixtureRequest, wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Project]:
    """One per supported Python found here (the wheel says >= 3.11)."""
    made = Project(tmp_path_factory.mktemp("adopt"))
    _run([request.param, "-m", "venv", made.venv], made.root, made.env)
    # Step 1: pip install the wheel (plus the test and server tools the README names).
    made.dir.mkdir()
    made.run(
        made.bin / "pip", "install", "-q", "--disable-pip-version-check", wheel,
        "pytest", "pytest-django", "pytest-asyncio", "uvicorn", timeout=600,
    )  # fmt: skip
    made.run(made.bin / "django-admin", "startproject", "mysite", ".")
    made.manage("startapp", "shop")
    settings = made.dir / "mysite" / "settings.py"
    # Step 2: durable_core first in INSTALLED_APPS, its URLs under durable/.
    first = 'INSTALLED_APPS = [\n    "durable_core",\n    "shop",\n'
    _edit(settings, "INSTALLED_APPS = [\n", first)
    (made.dir / "mysite" / "urls.py").write_text(URLS)
    # Step 3: an object in <app>/objects.py (and a view calling it, to serve).
    (made.dir / "shop" / "objects.py").write_text(OBJECTS)
    (made.dir / "shop" / "views.py").write_text(VIEWS)
    (made.dir / "pytest.ini").write_text(PYTEST_INI)
    (made.dir / "tests").mkdir()
    (made.dir / "tests" / "test_counter.py").write_text(TEST)
    made.manage("migrate", "--noinput")
    yield made


def test_the_wheel_installs_no_demo_packages_into_the_venv(project: Project):
    site = next(project.venv.glob("lib/python*/site-packages"))
    assert (site / "durable_core" / "templates").is_dir()
    assert not (site / "config").exists() and not (site / "apps").exists()


def test_manage_py_check_finds_no_errors_in_the_startproject_plus_two_edits(project: Project):
    output = project.manage("check")
    assert "ERROR" not in output
    assert "durable_core.E" not in output


def test_putting_durable_core_last_is_an_error_with_a_hint(project: Project):
    settings = project.dir / "mysite" / "settings.py"
    original = settings.read_text()
    try:
        _edit(settings, '    "durable_core",\n', "")  # moved to the end, as an append does
        staticfiles = "'django.contrib.staticfiles',\n"
        _edit(settings, staticfiles, staticfiles + "    'durable_core',\n")
        done = subprocess.run(
            [project.bin / "python", "manage.py", "check"],
            cwd=project.dir,
            env=project.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0
        assert "durable_core.E010" in done.stderr and "HINT" in done.stderr
    finally:
        settings.write_text(original)


def test_a_pytest_using_durable_host_passes_with_no_other_marker(project: Project):
    output = project.run(project.bin / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert re.search(r"\b1 passed\b", output), output


def _get(url: str) -> tuple[int, dict]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _serve(project: Project, args: list, port: int) -> Iterator[subprocess.Popen]:
    log = open(project.root / f"server-{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(a) for a in args], cwd=project.dir, env=project.env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(f"http://127.0.0.1:{port}/durable/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, (project.root / f"server-{port}.log").read_text()
            assert time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def test_uvicorn_serves_the_project_and_an_object_call_is_answered(project: Project):
    """Production serving: uvicorn speaks lifespan, so DurableLifespan starts the host."""
    (project.dir / "mysite" / "asgi.py").write_text(ASGI)
    port = free_port()
    server = project.bin / "uvicorn"
    for _ in _serve(project, [server, "mysite.asgi:application", "--port", port], port):
        health = _get(f"http://127.0.0.1:{port}/durable/healthz")[1]
        assert health["ok"] is True and health["mode"] == "embedded"
        assert _get(f"http://127.0.0.1:{port}/hit/a") == (200, {"name": "a", "value": 1})
        assert _get(f"http://127.0.0.1:{port}/hit/a") == (200, {"name": "a", "value": 2})
        status, body = _get(f"http://127.0.0.1:{port}/durable/api/objects/")
        assert (status, body["error"]) == (401, "not_authenticated")
    # Stopped gracefully: the write survived, as runserver shows next.
    port = free_port()
    manage = [project.bin / "python", "manage.py", "runserver", "--noreload", port]
    for _ in _serve(project, manage, port):
        assert _get(f"http://127.0.0.1:{port}/hit/a") == (200, {"name": "a", "value": 3})
