"""``DurableObject``: the base class of every durable object, and its context."""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

if TYPE_CHECKING:
    import contextlib

    from .exceptions import WebSocketError
    from .ids import ObjectId
    from .storage import ObjectStorage
    from .turns import ActiveObject
    from .websockets import ConnectRequest, WebSocket

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlarmInfo:
    """What ``on_alarm`` is told about this firing."""

    retry_count: int
    scheduled_time: float

    @property
    def is_retry(self) -> bool:
        """True when an earlier run for the same due time raised."""
        return self.retry_count > 0


class ObjectContext:
    """``self.ctx``: the object's identity and its handles on the runtime."""

    def __init__(self, active: ActiveObject) -> None:
        self._active = active

    @property
    def id(self) -> ObjectId:
        """This object's ID (``id.name`` is set when it was addressed by name)."""
        return self._active.object_id

    @property
    def fencing_token(self) -> int:
        """The token of this activation; pass it to external systems as a fence."""
        return self._active.lease.token

    def open_gate(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Let other events run while this turn awaits something slow.

        The writes so far commit on entry; after the block the turn continues in a new
        atomic segment. Storage writes inside the block raise StorageError.
        """
        return self._active.open_gate()

    # WebSockets (DESIGN §9) -------------------------------------------------------

    def accept_websocket(self, ws: WebSocket, tags: list[str] | tuple[str, ...] = ()) -> None:
        """Accept ``ws`` in ``on_websocket_connect``, with up to 10 tags to find it by."""
        self._active.accept_websocket(ws, tags)

    def get_websockets(self, tag: str | None = None) -> list[WebSocket]:
        """The accepted sockets (also those accepted before a hibernation), by tag."""
        return self._active.sockets.all(tag)

    def get_tags(self, ws: WebSocket) -> list[str]:
        """The tags ``ws`` was accepted with."""
        return list(ws.tags)

    def set_websocket_auto_response(self, request: str | None, response: str | None = None) -> None:
        """Let fronts answer the text message ``request`` with ``response`` themselves,
        without waking the object (e.g. a ping); ``None`` removes it."""
        if request is None:
            self._active.db.set_meta("ws_auto", None)
        else:
            if not isinstance(request, str) or not isinstance(response, str):
                raise TypeError("auto-response request and response are strings")
            self._active.db.set_meta("ws_auto", json.dumps([request, response]))
        for front in self._active.sockets.fronts():
            self._active.emit_control(front, {"auto_response": self._active.db.get_meta("ws_auto")})

    def abort(self, reason: str = "aborted") -> None:
        """Evict the object after this turn commits; queued calls are retried on a fresh
        instance (which runs ``on_start`` again)."""
        self._active.request_abort(reason)

    def destroy(self) -> None:
        """Delete this object's storage, record and alarm after this turn commits."""
        self._active.request_destroy()


class DurableObject:
    """Base class of durable objects.

    Subclasses live in an app's ``objects.py``, set ``namespace`` (``"app.Name"``), keep
    what must last in ``self.storage``, and expose public ``async def`` methods, which
    stubs call. In-memory attributes are a cache: after a turn raises, the runtime
    builds a new instance (``on_start`` runs again) unless ``reset_on_error = False``.
    """

    namespace: ClassVar[str | None] = None
    reset_on_error: ClassVar[bool] = True
    _namespace_name: ClassVar[str]

    if TYPE_CHECKING:
        # For type checkers a stub of a class is an instance of the class
        # (``Namespace[Counter].get_by_name()`` is a ``Counter``), so that calls through
        # it check their arguments and results. These two are what the stub itself adds;
        # they exist on stubs only (inside an object, its ID is ``self.ctx.id``).
        id: ObjectId

        async def call(
            self,
            method: str,
            *args: Any,
            timeout: float | None = None,
            call_id: str | None = None,
            **kwargs: Any,
        ) -> Any: ...

    def __init__(self, ctx: ObjectContext, storage: ObjectStorage) -> None:
        self.ctx = ctx
        self.storage = storage

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return
        from .registry import register

        cls._namespace_name = cls.namespace or _default_namespace(cls)
        register(cls)

    @classmethod
    def get_namespace_name(cls) -> str:
        """The namespace this class is registered under."""
        return cls._namespace_name

    @classmethod
    def stub(cls, address: object) -> Self:
        """The stub of the object a public address names: a 64-hex address is an object
        ID of this class's namespace, anything else a name (``Namespace.resolve``).

        This is the one way the apps turn an address from a URL or a message into a
        stub. Raises InvalidObjectId (a 400) for an address that names no object here.
        """
        from .registry import get_namespace

        return get_namespace(cls).resolve(address)

    @classmethod
    def is_callable_method(cls, name: str) -> bool:
        """True for public ``async def`` methods (not ``_x``, not ``on_x`` hooks)."""
        if name.startswith("_") or name.startswith("on_") or name in _RESERVED:
            return False
        attr = inspect.getattr_static(cls, name, None)
        return inspect.iscoroutinefunction(attr)

    # Hooks: override those you need. Each runs as a turn of its own (atomic, serial with
    # calls); the defaults below are what happens when a class does not define one.

    async def on_start(self) -> None:
        """Called on activation before any event; migrate storage here."""

    async def on_alarm(self, info: AlarmInfo) -> None:
        """The alarm set with ``self.storage.set_alarm(when)`` is due (DESIGN §8).

        Runs at least once per due time, exactly one run commits; if it raises, its
        writes are rolled back and it is retried with backoff (``info.retry_count``).
        """
        logger.warning("%s has an alarm but no on_alarm handler", self.ctx.id.key)

    async def on_websocket_connect(self, ws: WebSocket, request: ConnectRequest) -> None:
        """A client socket asks to connect (DESIGN §9): call ``self.ctx.accept_websocket(ws,
        tags)`` to accept it, or ``ws.close(code)`` to refuse. The default accepts."""
        self.ctx.accept_websocket(ws)

    async def on_websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        """A text (``str``) or binary (``bytes``) message from an accepted socket."""

    async def on_websocket_close(
        self, ws: WebSocket, code: int, reason: str, was_clean: bool
    ) -> None:
        """An accepted socket closed (by its client, its front, or a failure); it is no
        longer listed by ``ctx.get_websockets()``."""

    async def on_websocket_error(self, ws: WebSocket, error: WebSocketError) -> None:
        """An accepted socket failed (dropped, protocol error, overload): called just
        before ``on_websocket_close`` with the same code (``error.code``)."""


_RESERVED = frozenset(dir(DurableObject))


def _default_namespace(cls: type) -> str:
    from django.apps import apps

    config = apps.get_containing_app_config(cls.__module__) if apps.apps_ready else None
    label = config.label if config else cls.__module__.split(".")[0]
    return f"{label}.{cls.__name__}"
