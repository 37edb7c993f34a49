"""Namespaces: which DurableObject class serves which namespace name.

Classes register themselves when defined (``DurableObject.__init_subclass__``); the app
config imports every installed app's ``objects`` module at start (autodiscovery).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from .exceptions import InvalidObjectId, NamespaceNotFound
from .ids import ObjectId

if TYPE_CHECKING:
    from .objects import DurableObject

NAMESPACE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
# Public addresses of objects (chat rooms, documents, devices): a name, or an object ID.
ADDRESS_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
ADDRESS_ID_RE = re.compile(r"[0-9A-Fa-f]{64}")

T = TypeVar("T", bound="DurableObject")

_classes: dict[str, type[DurableObject]] = {}
duplicates: list[tuple[str, type, type]] = []  # reported by system check E002


def register(cls: type[DurableObject]) -> None:
    """Register ``cls`` under its namespace (explicit, or ``<app_label>.<ClassName>``)."""
    name = cls.get_namespace_name()
    existing = _classes.get(name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        duplicates.append((name, existing, cls))
    _classes[name] = cls


def get_object_class(namespace: str) -> type[DurableObject]:
    """The class registered for ``namespace``; raises NamespaceNotFound."""
    try:
        return _classes[namespace]
    except KeyError:
        raise NamespaceNotFound(f"no durable object class is registered as {namespace!r}") from None


def get_registered_classes() -> dict[str, type[DurableObject]]:
    """Every registered namespace and its class."""
    return dict(_classes)


class Namespace(Generic[T]):
    """Makes IDs and stubs for one namespace.

    Generic in its class for type checkers: the stubs of a ``Namespace[Counter]`` are
    typed as ``Counter``, so ``await stub.increment(by=2)`` checks its arguments and its
    result is an ``int`` (see ``DurableObject``). ``get_namespace(Counter)`` gives one.
    """

    def __init__(self, name: str, cls: type[T]) -> None:
        self.name = name
        self.object_class = cls

    def id_from_name(self, name: str) -> ObjectId:
        """The deterministic ID for ``name``."""
        return ObjectId.from_name(self.name, name)

    def new_unique_id(self) -> ObjectId:
        """A new random ID."""
        return ObjectId.new_unique(self.name)

    def id_from_string(self, value: str) -> ObjectId:
        """Parse a 64-hex ID of this namespace; raises InvalidObjectId."""
        return ObjectId.from_string(self.name, value)

    def get(self, object_id: ObjectId | str) -> T:
        """A stub for ``object_id`` (which must belong to this namespace)."""
        from .stubs import ObjectStub

        if not isinstance(object_id, ObjectId) or object_id.namespace != self.name:
            object_id = self.id_from_string(getattr(object_id, "hex", object_id))
        # An ObjectStub, typed as the class it calls (see the class docstring).
        return cast(T, ObjectStub(object_id, self.object_class))

    def get_by_name(self, name: str) -> T:
        """A stub for the object named ``name``."""
        return self.get(self.id_from_name(name))

    def resolve(self, address: object) -> T:
        """The object a public address names. A 64-hex address (any case) is always an
        object ID, never a name: one that is not an ID of this namespace names nothing.
        Anything else is a name of 1-64 characters of ``[A-Za-z0-9_-]``.

        Raises InvalidObjectId for an address that names no object of this namespace.
        """
        if not isinstance(address, str):
            raise InvalidObjectId("an address is a string")
        if ADDRESS_ID_RE.fullmatch(address):
            return self.get(self.id_from_string(address))
        if not ADDRESS_NAME_RE.fullmatch(address):
            raise InvalidObjectId("names are 1-64 characters of A-Z, a-z, 0-9, _ and -")
        return self.get_by_name(address)

    def __repr__(self) -> str:
        return f"<Namespace {self.name}>"


@overload
def get_namespace(name: type[T]) -> Namespace[T]: ...
@overload
def get_namespace(name: str) -> Namespace[Any]: ...


def get_namespace(name: str | type[DurableObject]) -> Namespace[Any]:
    """The namespace ``name``, or the one the class ``name`` serves (then its stubs are
    typed as that class); raises NamespaceNotFound when no class serves it."""
    if isinstance(name, type):
        registered = getattr(name, "_namespace_name", None)  # none on abstract classes
        if registered is None or _classes.get(registered) is not name:
            raise NamespaceNotFound(f"{name.__qualname__} serves no namespace")
        return Namespace(registered, name)
    return Namespace(name, get_object_class(name))
