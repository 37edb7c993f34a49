"""App config: autodiscovers ``<app>/objects.py`` and registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class DurableCoreConfig(AppConfig):
    """durable_core: durable objects for Django."""

    name = "durable_core"
    label = "durable_core"
    verbose_name = "Durable objects"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)

        autodiscover_modules("objects")
