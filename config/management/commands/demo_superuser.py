"""Create the demo superuser (admin/admin) when no superuser exists; local demo only.

The demo user is for ``make run`` and ``make cluster``, which serve on loopback only:
the command refuses to create it for any other bind address, and ``config.auth``
refuses its demo password from any client that is not on this machine (issue 16 §11).
"""

import ipaddress

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "admin"  # the published demo login, loopback only


def is_loopback(host: str) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Command(BaseCommand):
    help = "Create the local demo superuser admin/admin if there is no superuser yet."

    def add_arguments(self, parser):
        parser.add_argument(
            "--bind",
            default="127.0.0.1",
            help="the address the demo server will listen on; only a loopback address "
            "gets a demo user (default 127.0.0.1)",
        )

    def handle(self, *args, **options):
        if not is_loopback(options["bind"]):
            raise CommandError(
                f"no demo superuser for a server bound to {options['bind']}: admin/admin is "
                "for a local demo on a loopback address; use createsuperuser instead"
            )
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            return
        users.objects.create_superuser(DEMO_USERNAME, "admin@localhost", DEMO_PASSWORD)
        self.stdout.write("Created demo superuser: admin / admin (local demo only)")
