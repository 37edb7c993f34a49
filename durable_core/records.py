"""Reads and writes of object records and the alarm index from the runtime (async, off
the event loop). ``RecordStore`` is how a host reaches them (DESIGN §8, §10)."""

from __future__ import annotations

import datetime as dt

from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .ids import ObjectId
from .models import NamespaceFenceFloor, ObjectRecord

CLAIM_SECONDS = 30.0  # an alarm claimed by one host's scheduler is left to it this long


async def aget_fence_floor(object_id: ObjectId) -> int:
    """The fence floor kept for an object (0 when it never stored data): its record's,
    and never below its namespace's floor of purged records (``purge_deleted_records``)."""
    floor = await (
        ObjectRecord.objects.filter(namespace=object_id.namespace, object_id=object_id.hex)
        .values_list("fence_floor", flat=True)
        .afirst()
    )
    purged = await (
        NamespaceFenceFloor.objects.filter(namespace=object_id.namespace)
        .values_list("floor", flat=True)
        .afirst()
    )
    return max(floor or 0, purged or 0)


@sync_to_async
def aensure_record(object_id: ObjectId, token: int) -> None:
    """Create (or revive) the record before the reply to the object's first write
    leaves; its fence floor rises to ``token`` (a destroy by an older owner that
    finishes late then leaves this record alone)."""
    with transaction.atomic():
        record = _locked(object_id)
        if record is None:
            _create(object_id, token, last_active=timezone.now())
            return
        record.fence_floor = max(record.fence_floor, token)
        record.deleted = False
        record.last_active = timezone.now()
        record.save(update_fields=["fence_floor", "deleted", "last_active"])


@sync_to_async
def araise_fence_floor(object_id: ObjectId, token: int) -> None:
    """Raise the record's fence floor to ``token`` (before a destroy commits)."""
    with transaction.atomic():
        record = _locked(object_id)
        if record is None:
            _create(object_id, token)
        elif record.fence_floor < token:
            record.fence_floor = token
            record.save(update_fields=["fence_floor"])


@sync_to_async
def amark_deleted(object_id: ObjectId, token: int) -> None:
    """After a destroy by ``token`` committed: keep the record as a fence floor, clear
    its alarm. Nothing changes when a newer owner (a higher floor) recorded itself."""
    with transaction.atomic():
        record = _locked(object_id)
        if record is None:
            _create(object_id, token, deleted=True)
            return
        if record.fence_floor > token:
            return  # recreated by a newer owner since
        record.fence_floor = token
        record.deleted = True
        record.alarm_at = None
        record.alarm_claim_until = None
        record.storage_bytes = 0
        record.save()


def _create(object_id: ObjectId, token: int, **fields: object) -> None:
    ObjectRecord.objects.create(
        namespace=object_id.namespace,
        object_id=object_id.hex,
        name=object_id.name or "",
        fence_floor=token,
        **fields,
    )


def _locked(object_id: ObjectId) -> ObjectRecord | None:
    return (
        ObjectRecord.objects.select_for_update()
        .filter(namespace=object_id.namespace, object_id=object_id.hex)
        .first()
    )


@sync_to_async
def atouch_many(activity: dict[tuple[str, str], tuple[dt.datetime, int | None]]) -> None:
    """Batched ``last_active`` and size updates (one write per object per flush)."""
    with transaction.atomic():
        for (namespace, hex_id), (when, size) in activity.items():
            fields: dict = {"last_active": when}
            if size is not None:
                fields["storage_bytes"] = size
            ObjectRecord.objects.filter(namespace=namespace, object_id=hex_id).update(**fields)


async def aset_alarm_index(object_id: ObjectId, when: float) -> None:
    """Record the alarm time in the index (before the object's commit)."""
    await ObjectRecord.objects.filter(
        namespace=object_id.namespace, object_id=object_id.hex
    ).aupdate(alarm_at=when, alarm_claim_until=None)


async def aclear_alarm_index(object_id: ObjectId) -> None:
    """Drop the index entry (after the commit that removed the alarm)."""
    await ObjectRecord.objects.filter(
        namespace=object_id.namespace, object_id=object_id.hex
    ).aupdate(alarm_at=None, alarm_claim_until=None)


@sync_to_async
def aclaim_due(now: float, limit: int = 100) -> list[tuple[str, str, str]]:
    """Claim up to ``limit`` due, unclaimed alarms; returns (namespace, id, name)."""
    with transaction.atomic():
        rows = list(
            ObjectRecord.objects.filter(alarm_at__lte=now)
            .filter(Q(alarm_claim_until__isnull=True) | Q(alarm_claim_until__lt=now))
            .order_by("alarm_at")
            .values_list("pk", "namespace", "object_id", "name")[:limit]
        )
        claimed = []
        for pk, namespace, hex_id, name in rows:
            # Conditional update: of two hosts racing for a row, one wins it.
            won = (
                ObjectRecord.objects.filter(pk=pk)
                .filter(Q(alarm_claim_until__isnull=True) | Q(alarm_claim_until__lt=now))
                .update(alarm_claim_until=now + CLAIM_SECONDS)
            )
            if won:
                claimed.append((namespace, hex_id, name))
        return claimed


def purge_deleted_records(older_than: float = 3600.0, batch: int = 1000) -> int:
    """Garbage-collect the records of objects deleted more than ``older_than`` seconds
    ago; returns how many went. What the fence needs stays, compactly: before a batch of
    a namespace's records is deleted, their highest floor is folded into the namespace's
    ``NamespaceFenceFloor`` in the same transaction, and ``aget_fence_floor`` never
    answers below it (DESIGN §4: a recreated object still refuses its old owners). A
    record revived meanwhile (``deleted`` cleared by a new owner) is left alone."""
    cutoff = timezone.now() - dt.timedelta(seconds=older_than)
    purged = 0
    while True:
        with transaction.atomic():
            rows = list(
                ObjectRecord.objects.select_for_update()
                .filter(deleted=True, last_active__lt=cutoff)
                .order_by("pk")
                .values_list("pk", "namespace", "fence_floor")[:batch]
            )
            if not rows:
                return purged
            floors: dict[str, int] = {}
            for _, namespace, floor in rows:
                floors[namespace] = max(floors.get(namespace, 0), floor)
            for namespace, floor in floors.items():
                kept, _ = NamespaceFenceFloor.objects.select_for_update().get_or_create(
                    namespace=namespace
                )
                if kept.floor < floor:
                    kept.floor = floor
                    kept.save(update_fields=["floor"])
            purged += ObjectRecord.objects.filter(
                pk__in=[pk for pk, _, _ in rows], deleted=True
            ).delete()[0]
        if len(rows) < batch:
            return purged


class RecordStore:
    """What a host keeps in the Django database about its objects: records (fence
    floors, deletion, activity) and the alarm index. A host takes one (the simulation
    gives an in-memory one); this one is the Django ORM."""

    async def fence_floor(self, object_id: ObjectId) -> int:
        return await aget_fence_floor(object_id)

    async def ensure(self, object_id: ObjectId, token: int) -> None:
        await aensure_record(object_id, token)

    async def raise_floor(self, object_id: ObjectId, token: int) -> None:
        await araise_fence_floor(object_id, token)

    async def mark_deleted(self, object_id: ObjectId, token: int) -> None:
        await amark_deleted(object_id, token)

    async def touch_many(self, activity: dict) -> None:
        await atouch_many(activity)

    async def set_alarm(self, object_id: ObjectId, when: float) -> None:
        await aset_alarm_index(object_id, when)

    async def clear_alarm(self, object_id: ObjectId) -> None:
        await aclear_alarm_index(object_id)

    async def purge_deleted(self, older_than: float) -> int:
        return await sync_to_async(purge_deleted_records)(older_than)

    async def claim_due(self, now: float) -> list[tuple[str, str, str]]:
        return await aclaim_due(now)
