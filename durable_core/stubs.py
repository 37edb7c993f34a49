"""Stubs: the caller's handle on one object; ``await stub.method(...)`` is an RPC."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import MethodNotFound

if TYPE_CHECKING:
    from .ids import ObjectId
    from .objects import DurableObject


class ObjectStub:
    """Calls public async methods of one durable object through the router."""

    def __init__(self, object_id: ObjectId, object_class: type[DurableObject]) -> None:
        self.id = object_id
        self._class = object_class

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_") or not self._class.is_callable_method(method):
            raise MethodNotFound(
                f"{self._class.get_namespace_name()} has no public async method {method!r}"
            )

        async def call(*args: Any, **kwargs: Any) -> Any:
            from .router import get_router

            return await get_router().call(self.id, method, args, kwargs)

        call.__name__ = method
        return call

    async def call(
        self,
        method: str,
        *args: Any,
        timeout: float | None = None,
        call_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` with an explicit deadline (seconds) and/or call id.

        Pass the ``call_id`` of a ``CallTimeout`` to retry that call: if it ran and
        committed, its first result comes back and it does not run twice.
        """
        from .router import get_router

        if not self._class.is_callable_method(method):
            raise MethodNotFound(f"no public async method {method!r}")
        return await get_router().call(
            self.id, method, args, kwargs, timeout=timeout, call_id=call_id
        )

    def __repr__(self) -> str:
        return f"<ObjectStub {self.id!r}>"
