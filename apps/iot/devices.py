"""Device ids: as chat room names (CONTRACT § IoT device twins).

1-64 chars of ``[A-Za-z0-9_-]``; a 64-hex string is always read as an object ID, and one
that is not a valid ID of this namespace names no device.
"""

from __future__ import annotations

from durable_core.exceptions import InvalidObjectId
from durable_core.registry import get_namespace
from durable_core.stubs import ObjectStub

from .twin import DEVICE_ID_RE, HEX_ID_RE

NAMESPACE = "iot.Device"


def get_device_stub(device_id: str) -> ObjectStub:
    """The stub of a device; raises LookupError for an id that names no device."""
    namespace = get_namespace(NAMESPACE)
    if HEX_ID_RE.fullmatch(device_id):
        try:
            return namespace.get(namespace.id_from_string(device_id))
        except InvalidObjectId:
            raise LookupError(f"{device_id} is not a device id") from None
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise LookupError("device ids are 1-64 chars of [A-Za-z0-9_-]")
    return namespace.get_by_name(device_id)


def new_device_stub() -> ObjectStub:
    """A device with a new random (64-hex) id."""
    namespace = get_namespace(NAMESPACE)
    return namespace.get(namespace.new_unique_id())
