"""The demo's own durable object: a named counter on the home page."""

from durable_core.objects import DurableObject


class Counter(DurableObject):
    """A counter kept in the object's storage."""

    namespace = "demo.Counter"

    async def increment(self, by: int = 1) -> int:
        """Add ``by`` and return the new value."""
        value = self.storage.get("n", 0) + by
        self.storage.put("n", value)
        return value

    async def value(self) -> int:
        """The current value."""
        return self.storage.get("n", 0)
