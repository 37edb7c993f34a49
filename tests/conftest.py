"""Shared fixtures: every test gets its own storage directory and ID key."""

from __future__ import annotations

import pytest
from django.test import override_settings

from durable_core.ids import reset_id_key_cache


@pytest.fixture(autouse=True)
def isolated_durable_settings(tmp_path, settings):
    """Point object storage and the ID key at this test's temporary directory."""
    configured = dict(settings.DURABLE_OBJECTS)
    configured.update(
        STORAGE_DIR=str(tmp_path / "objects"),
        ID_KEY_FILE=str(tmp_path / "id_key"),
        REDIS_URL=None,
    )
    reset_id_key_cache()
    with override_settings(DURABLE_OBJECTS=configured):
        yield tmp_path
    reset_id_key_cache()


@pytest.fixture
def browser():
    """A headless Debian Chromium driven by playwright (browsers are never downloaded).

    One per test: sync playwright runs an event loop in the main thread while it is
    open, and a session-wide one would break every asyncio test that runs after it."""
    import shutil

    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "chromium is not installed (apt-get install -y chromium)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def demo_server(tmp_path):
    """The demo project (config.settings, embedded mode) served by a real
    ``manage.py runserver`` on a free loopback port, migrated, in its own VAR_DIR."""
    from tests._servers import running_server

    with running_server(tmp_path / "demo") as server:
        yield server
