"""A queryable summary of each device, written by its object after each commit.

``GET /api/devices/`` lists devices from the object records (``ObjectRecord``: which
devices exist and are not deleted) joined with this table (version and connection),
never by activating objects or scanning files. ``ObjectRecord`` has no field for an
app's own summary, hence this model. ``seq`` grows with every change the object makes,
so an older summary arriving late never overwrites a newer one.
"""

from __future__ import annotations

from django.db import IntegrityError, models, transaction


class DeviceSummary(models.Model):
    """What the device list shows, as of the device object's last committed change."""

    object_id = models.CharField(max_length=64, unique=True)
    device_id = models.CharField(max_length=64, db_index=True)
    version = models.BigIntegerField(default=0)
    has_twin = models.BooleanField(default=False)
    connected = models.BooleanField(default=False)
    last_seen = models.FloatField(null=True, blank=True)
    timestamp = models.FloatField(null=True, blank=True)  # the twin's last write
    seq = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "device summaries"

    def __str__(self) -> str:
        return f"{self.device_id} v{self.version}"

    def as_listed(self) -> dict:
        """The entry of ``GET /api/devices/``."""
        return {
            "device_id": self.device_id,
            "version": self.version,
            "timestamp": self.timestamp,
            "connection": {
                "state": "connected" if self.connected else "disconnected",
                "last_seen": self.last_seen,
            },
        }


def save_summary(fields: dict) -> bool:
    """Upsert one summary unless a newer one (higher ``seq``) is already stored."""
    object_id, seq = fields["object_id"], fields["seq"]
    values = {k: v for k, v in fields.items() if k != "object_id"}
    for _ in range(2):
        with transaction.atomic():
            if DeviceSummary.objects.filter(object_id=object_id, seq__lt=seq).update(**values):
                return True
            if DeviceSummary.objects.filter(object_id=object_id).exists():
                return False  # a newer summary is stored
            try:
                with transaction.atomic():
                    DeviceSummary.objects.create(object_id=object_id, **values)
                return True
            except IntegrityError:
                continue  # created meanwhile by another writer: compare seq again
    return False
