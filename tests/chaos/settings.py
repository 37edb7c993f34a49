"""Settings of the chaos servers: the process tests' settings plus the chaos objects."""

from tests.process_settings import *  # noqa: F403
from tests.process_settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.chaos.app"]
ROOT_URLCONF = "tests.chaos.urls"
