"""``manage.py purgerecords``: garbage-collect the records of deleted objects, keeping
their fence floors compactly (one row per namespace; ``records.purge_deleted_records``).
Run it from cron or a scheduler: objects that come and go (rate-limit keys that destroy
themselves, deleted devices) otherwise leave one record each behind forever."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from durable_core.records import purge_deleted_records


class Command(BaseCommand):
    help = "Delete the records of objects deleted long enough ago, keeping their fence floors."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=float,
            default=3600.0,
            help="seconds since the record's last activity (default 3600)",
        )

    def handle(self, *args, **options):
        if not options["older_than"] >= 0:
            raise CommandError("--older-than is a number of seconds >= 0")
        purged = purge_deleted_records(options["older_than"])
        self.stdout.write(f"purged {purged} records of deleted objects")
