"""Reads and writes of object records from the runtime (async, off the event loop)."""

from __future__ import annotations

import datetime as dt

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from .ids import ObjectId
from .models import ObjectRecord


async def aget_fence_floor(object_id: ObjectId) -> int:
    """The fence floor kept for an object (0 when it never stored data)."""
    floor = await (
        ObjectRecord.objects.filter(namespace=object_id.namespace, object_id=object_id.hex)
        .values_list("fence_floor", flat=True)
        .afirst()
    )
    return floor or 0


@sync_to_async
def aensure_record(object_id: ObjectId, token: int) -> None:
    """Create (or revive) the record before the reply to the object's first write
    leaves; its fence floor rises to ``token`` (a destroy by an older owner that
    finishes late then leaves this record alone)."""
    with transaction.atomic():
        record = _locked(object_id)
        if record is None:
            ObjectRecord.objects.create(
                namespace=object_id.namespace,
                object_id=object_id.hex,
                name=object_id.name or "",
                fence_floor=token,
                last_active=timezone.now(),
            )
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
            ObjectRecord.objects.create(
                namespace=object_id.namespace,
                object_id=object_id.hex,
                name=object_id.name or "",
                fence_floor=token,
            )
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
            ObjectRecord.objects.create(
                namespace=object_id.namespace,
                object_id=object_id.hex,
                name=object_id.name or "",
                fence_floor=token,
                deleted=True,
            )
            return
        if record.fence_floor > token:
            return  # recreated by a newer owner since
        record.fence_floor = token
        record.deleted = True
        record.alarm_at = None
        record.alarm_claim_until = None
        record.storage_bytes = 0
        record.save()


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
