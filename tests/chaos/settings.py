"""Settings of the chaos servers: the process tests' settings plus the chaos objects."""

from tests.process_settings import *  # noqa: F403
from tests.process_settings import INSTALLED_APPS, LOGGING

INSTALLED_APPS = [*INSTALLED_APPS, "tests.chaos.app"]
ROOT_URLCONF = "tests.chaos.urls"
# The chaos routes log the failpoints they switch (counted in the run's summary).
LOGGING = {
    **LOGGING,
    "loggers": {**LOGGING["loggers"], "tests.chaos": {"handlers": ["console"], "level": "INFO"}},
}
