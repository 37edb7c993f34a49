"""System checks report misconfiguration with ids and hints (STYLE: errors)."""

from __future__ import annotations

from django.test import override_settings

from durable_core import checks
from durable_core.objects import DurableObject
from durable_core.registry import _classes


def ids(messages) -> set[str]:
    return {m.id for m in messages}


def test_default_settings_pass():
    assert checks.check_settings() == []


def test_unknown_setting_and_bad_ttl_are_errors(settings):
    bad = dict(settings.DURABLE_OBJECTS, LEASE_TTL=0, TYPO_SETTING=1)
    with override_settings(DURABLE_OBJECTS=bad):
        found = ids(checks.check_settings())
    assert {"durable_core.E001", "durable_core.E004"} <= found


def test_bad_synchronous_level_is_an_error(settings):
    with override_settings(DURABLE_OBJECTS=dict(settings.DURABLE_OBJECTS, SYNCHRONOUS="OFF")):
        assert "durable_core.E006" in ids(checks.check_settings())


def test_storage_dir_that_cannot_be_created_is_an_error(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    config = dict(settings.DURABLE_OBJECTS, STORAGE_DIR=str(blocker / "objects"))
    with override_settings(DURABLE_OBJECTS=config):
        assert "durable_core.E007" in ids(checks.check_settings())


def test_class_without_explicit_namespace_warns_and_duplicates_error():
    class Implicit(DurableObject):
        async def ping(self) -> int:
            return 1

    class First(DurableObject):
        namespace = "tests.Clash"

    class Second(DurableObject):
        namespace = "tests.Clash"

    try:
        messages = checks.check_object_classes()
        warned = [m for m in messages if m.id == "durable_core.W001"]
        assert any("Implicit" in m.msg for m in warned)
        assert "durable_core.E002" in ids(messages)
        assert Implicit.get_namespace_name() == "tests.Implicit"
    finally:
        from durable_core import registry

        for name in ("tests.Implicit", "tests.Clash"):
            _classes.pop(name, None)
        registry.duplicates[:] = [d for d in registry.duplicates if d[0] != "tests.Clash"]


def test_project_classes_pass_the_checks():
    assert [m for m in checks.check_object_classes() if m.level >= 40] == []
