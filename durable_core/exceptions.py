"""The error hierarchy of durable_core.

Every error a caller can meet derives from ``DurableError``. Runtime errors carry two
flags the router and the edges act on: ``retryable`` (sending the same call again, with
the same call id, may succeed and will not apply it twice) and ``overloaded`` (the
object or host refused work; answer 503 with Retry-After).
"""

from __future__ import annotations

from typing import Any


class DurableError(Exception):
    """Raised for any durable_core failure; subclasses say whether a retry can help."""

    retryable = False
    overloaded = False

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-compatible envelope, the same for local and remote calls."""
        return {
            "type": type(self).__name__,
            "message": str(self),
            "retryable": self.retryable,
            "overloaded": self.overloaded,
        }


class InvalidObjectId(DurableError, ValueError):
    """Raised when an ID is malformed or belongs to another namespace; never retryable."""


class NamespaceNotFound(DurableError, LookupError):
    """Raised when no durable object class is registered under a namespace name."""


class MethodNotFound(DurableError, AttributeError):
    """Raised when a stub names a method the class does not expose; never retryable."""


class InvalidArgument(DurableError, TypeError):
    """Raised when call arguments or a result are not JSON-compatible; never retryable."""


class StorageError(DurableError):
    """Raised when an object's storage refuses an operation; a retry will not help."""


class StorageLimitExceeded(StorageError, ValueError):
    """Raised when a key, value, statement, parameter list or database exceeds its limit."""


class SqlError(StorageError):
    """Raised when user SQL fails, is denied by the authorizer, or runs past its time limit."""


class StaleOwner(DurableError):
    """Raised when the storage refuses this host's fencing token; the retry reaches the owner."""

    retryable = True


class NotOwner(DurableError):
    """Raised when a call reaches a host that does not hold the object's lease; retryable."""

    retryable = True


class LeaseLost(DurableError):
    """Raised when a host's lease on an object lapsed before its turn could finish; retryable."""

    retryable = True


class ObjectReset(DurableError):
    """Raised when the object was evicted, aborted or destroyed before this call ran; retryable."""

    retryable = True


class ObjectOverloaded(DurableError):
    """Raised when an object's mailbox is full or its per-object limit refuses a call;
    retry after a pause (``retry_after`` seconds when known; HTTP 503 with Retry-After)."""

    retryable = True
    overloaded = True

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.retry_after is not None:
            data["retry_after"] = self.retry_after
        return data


class HostUnavailable(DurableError):
    """Raised when no host can take the call now (shutting down, starting); retryable."""

    retryable = True


class CallTimeout(DurableError):
    """Raised when a call had no reply within its deadline; retry with the same call id."""

    retryable = True
    call_id: str | None = None  # pass to ObjectStub.call(call_id=...) to retry safely


class TurnTimeout(DurableError):
    """Raised when a turn ran past the turn time limit; it was rolled back and the object reset."""


class PartiallyApplied(DurableError):
    """Raised when a call failed (or was sent again) after part of its turn had committed:
    it wrote, then awaited another object or opened its gate, which commits (DESIGN §6).
    Running it again could apply that part twice, so it is never retried by itself."""


class NoHostError(DurableError, RuntimeError):
    """Raised when a process that runs no object host calls an object in embedded mode."""


class StorageDirLocked(DurableError, RuntimeError):
    """Raised at start when another embedded process already serves the storage directory."""


class ObjectNotActive(DurableError, LookupError):
    """Raised when an inspection reaches a host on which the object is not active; read
    its file instead (a retry does not help)."""


class WebSocketError(DurableError):
    """What ``on_websocket_error`` receives: the socket failed with ``code`` (and ``reason``)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class RemoteObjectError(DurableError):
    """Raised when the object's own code raised; carries the remote type name and message."""

    def __init__(self, remote_type: str, message: str) -> None:
        super().__init__(f"{remote_type}: {message}")
        self.remote_type = remote_type
        self.remote_message = message

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "RemoteObjectError",
            "remote_type": self.remote_type,
            "message": self.remote_message,
            "retryable": False,
            "overloaded": False,
        }


_RUNTIME_ERRORS: dict[str, type[DurableError]] = {
    cls.__name__: cls
    for cls in (
        InvalidObjectId,
        NamespaceNotFound,
        MethodNotFound,
        InvalidArgument,
        StorageError,
        StorageLimitExceeded,
        SqlError,
        StaleOwner,
        NotOwner,
        LeaseLost,
        ObjectReset,
        ObjectOverloaded,
        HostUnavailable,
        CallTimeout,
        TurnTimeout,
        PartiallyApplied,
        NoHostError,
        ObjectNotActive,
    )
}


def error_to_dict(exc: BaseException) -> dict[str, Any]:
    """Encode any exception raised by a turn as the envelope callers receive."""
    if isinstance(exc, DurableError) and type(exc).__name__ in _RUNTIME_ERRORS:
        return exc.to_dict()
    if isinstance(exc, RemoteObjectError):
        return exc.to_dict()
    return RemoteObjectError(type(exc).__name__, str(exc)).to_dict()


def error_from_dict(data: dict[str, Any]) -> DurableError:
    """Rebuild the exception a caller raises from an error envelope."""
    kind = data.get("type")
    if kind == "RemoteObjectError":
        return RemoteObjectError(str(data.get("remote_type")), str(data.get("message")))
    cls = _RUNTIME_ERRORS.get(str(kind))
    if cls is None:
        return RemoteObjectError(str(kind), str(data.get("message")))
    if cls is ObjectOverloaded:
        retry_after = data.get("retry_after")
        return ObjectOverloaded(
            str(data.get("message")),
            retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
        )
    return cls(str(data.get("message")))
