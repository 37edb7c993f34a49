"""Object records: every object that ever stored data, with its fence floor and alarm."""

from __future__ import annotations

from typing import Any

from django.db import models


class ObjectRecordQuerySet(models.QuerySet["ObjectRecord"]):
    """The queries the apps and the admin make of object records (their public API:
    apps never filter ``ObjectRecord`` by its columns themselves)."""

    def live(self, namespace: str | type[Any]) -> ObjectRecordQuerySet:
        """The records of a namespace (a name, or the DurableObject class serving it)
        whose objects are not destroyed."""
        if isinstance(namespace, type):
            namespace = namespace.get_namespace_name()
        return self.filter(namespace=namespace, deleted=False)

    def named(self) -> ObjectRecordQuerySet:
        """Only the records of objects addressed by a name (not by a random ID)."""
        return self.exclude(name="")

    def of(self, object_id: Any) -> ObjectRecordQuerySet:
        """The record of one object (an ObjectId), deleted or not."""
        return self.filter(namespace=object_id.namespace, object_id=object_id.hex)


class ObjectRecord(models.Model):
    """One durable object that has written storage at least once (DESIGN §10).

    ``fence_floor`` survives deletion of the object's file, so a recreated object still
    refuses its old owner. ``alarm_at`` is the durable alarm index every host's scheduler
    reads; the object's own storage holds the truth (DESIGN §8).
    """

    namespace = models.CharField(max_length=200)
    object_id = models.CharField(max_length=64)
    name = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    last_active = models.DateTimeField(auto_now_add=True, db_index=True)
    fence_floor = models.BigIntegerField(default=0)
    storage_bytes = models.BigIntegerField(default=0)
    deleted = models.BooleanField(default=False)
    alarm_at = models.FloatField(null=True, blank=True, db_index=True)
    alarm_claim_until = models.FloatField(null=True, blank=True)

    objects = ObjectRecordQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["namespace", "object_id"], name="durable_object_key")
        ]
        indexes = [
            models.Index(fields=["namespace", "name"], name="durable_object_name"),
            # The admin sorts a namespace's objects by activity and by size.
            models.Index(fields=["namespace", "last_active"], name="durable_object_active"),
            models.Index(fields=["namespace", "storage_bytes"], name="durable_object_size"),
        ]

    def __str__(self) -> str:
        return f"{self.namespace}:{self.name or self.object_id[:12]}"


class NamespaceFenceFloor(models.Model):
    """The highest fence floor of a namespace's purged records (DESIGN §4, §10).

    Records of deleted objects are garbage-collected (``records.purge_deleted_records``);
    their floors are folded into this one row per namespace first, and an object's floor
    is never below it, so a deleted object recreated after its record went still refuses
    every older owner. One row per namespace however many objects come and go.
    """

    namespace = models.CharField(max_length=200, unique=True)
    floor = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.namespace} >= {self.floor}"


class LiveOperations(ObjectRecord):
    """The admin's live operations page (hosts, hottest objects, overloads; issue 22):
    a proxy, so the page has its entry on the admin index. It stores nothing."""

    class Meta:
        proxy = True
        verbose_name = "live operations"
        verbose_name_plural = "live operations"
