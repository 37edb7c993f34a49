"""Settings of the server subprocesses started by tests/core/test_processes.py.

The demo project plus ``tests.process_app``, whose durable object has an alarm that the
tests drive over HTTP. Select with ``DJANGO_SETTINGS_MODULE=tests.process_settings``.
"""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.process_app"]
ROOT_URLCONF = "tests.process_app.urls"
ASGI_APPLICATION = "tests.process_app.asgi.application"
