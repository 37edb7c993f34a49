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
