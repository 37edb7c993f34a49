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


def test_durable_core_after_an_app_with_its_own_runserver_is_an_error_with_a_hint():
    """staticfiles (and daphne) bring a runserver that would win and start no host."""
    wrong = [
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "django.contrib.staticfiles",
        "daphne",
        "durable_core",
    ]
    with override_settings(INSTALLED_APPS=wrong):
        errors = [m for m in checks.check_project() if m.id == "durable_core.E010"]
    assert [e.msg.split(",")[0] for e in errors] == [
        "'durable_core' comes after 'django.contrib.staticfiles' in INSTALLED_APPS",
        "'durable_core' comes after 'daphne' in INSTALLED_APPS",
    ]
    assert "Put 'durable_core' before" in errors[0].hint


def test_durable_core_first_passes_the_order_check():
    right = [
        "durable_core",
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "django.contrib.staticfiles",
        "daphne",
    ]
    with override_settings(INSTALLED_APPS=right):
        assert "durable_core.E010" not in ids(checks.check_project())


def test_no_configured_id_key_is_a_warning_naming_the_file_to_back_up(settings):
    implicit = {k: v for k, v in settings.DURABLE_OBJECTS.items() if not k.startswith("ID_KEY")}
    with override_settings(DURABLE_OBJECTS=implicit):
        (warning,) = [m for m in checks.check_project() if m.id == "durable_core.W002"]
    assert "id_key" in warning.msg and "back it up" in warning.hint
    with override_settings(DURABLE_OBJECTS=dict(implicit, ID_KEY="ab" * 32)):
        assert "durable_core.W002" not in ids(checks.check_project())


def test_sqlite_without_wal_timeout_and_immediate_writers_is_a_warning():
    plain = {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}
    assert ids(checks._check_sqlite_options(plain)) == {"durable_core.W003"}
    tuned = dict(plain, OPTIONS=checks.SQLITE_OPTIONS)
    assert checks._check_sqlite_options(tuned) == []
    assert checks._check_sqlite_options({"ENGINE": "django.db.backends.postgresql"}) == []


def test_no_asgi_application_is_a_warning_and_runserver_falls_back_to_the_projects_asgi():
    from durable_core.asgi import DurableLifespan
    from durable_core.management.commands.runserver import default_asgi_application

    with override_settings(ASGI_APPLICATION=None):
        assert "durable_core.W004" in ids(checks.check_project())
    with override_settings(WSGI_APPLICATION="config.wsgi.application"):
        assert default_asgi_application() == "config.asgi.application"
    with override_settings(WSGI_APPLICATION="nowhere.wsgi.application"):
        assert default_asgi_application() == "durable_core.asgi.application"
    from durable_core import asgi

    assert isinstance(asgi.application, DurableLifespan)


def test_the_demo_project_passes_the_adoption_checks():
    assert checks.check_project() == []
