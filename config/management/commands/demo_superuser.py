"""Create the demo superuser (admin/admin) when no superuser exists; local demo only."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the local demo superuser admin/admin if there is no superuser yet."

    def handle(self, *args, **options):
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            return
        users.objects.create_superuser("admin", "admin@localhost", "admin")
        self.stdout.write("Created demo superuser: admin / admin (local demo only)")
