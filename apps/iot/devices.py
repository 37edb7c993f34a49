"""Device ids: as chat room names (CONTRACT § IoT device twins).

1-64 chars of ``[A-Za-z0-9_-]``; a 64-hex string is always read as an object ID, and one
that is not a valid ID of this namespace names no device.
"""

from __future__ import annotations

from durable_core.exceptions import InvalidObjectId
from durable_core.registry import get_namespace
from durable_core.stubs import ObjectStub

NAMESPACE = "iot.Device"


def get_device_stub(device_id: str) -> ObjectStub:
    """The stub of a device; raises LookupError for an id that names no device."""
    try:
        return get_namespace(NAMESPACE).resolve(device_id)
    except InvalidObjectId as exc:
        raise LookupError(f"no such device: {exc}") from None


def new_device_stub() -> ObjectStub:
    """A device with a new random (64-hex) id."""
    namespace = get_namespace(NAMESPACE)
    return namespace.get(namespace.new_unique_id())
