"""The objects the chaos clients drive: a compare-and-set register and a ledger counter."""

from __future__ import annotations

from durable_core.objects import DurableObject


class Register(DurableObject):
    """One value with read, write and compare-and-set: the linearizability subject."""

    namespace = "chaos.Register"

    async def read(self) -> int | None:
        """The current value (None before the first write)."""
        return self.storage.get("v")

    async def write(self, value: int) -> None:
        """Set the value."""
        self.storage.put("v", value)

    async def cas(self, old: int | None, new: int) -> dict:
        """Set ``new`` if the value is ``old``; else report the value found."""
        current = self.storage.get("v")
        if current != old:
            return {"ok": False, "value": current}
        self.storage.put("v", new)
        return {"ok": True}


class Ledger(DurableObject):
    """A counter that also appends the id of every increment it applies, duplicates
    included, so that a checker can see an increment lost or applied twice."""

    namespace = "chaos.Ledger"

    async def on_start(self) -> None:
        self.storage.sql.execute("CREATE TABLE IF NOT EXISTS applied (op TEXT NOT NULL)")

    async def add(self, op: str) -> int:
        """Apply increment ``op``; returns the new count."""
        n = self.storage.get("n", 0) + 1
        self.storage.put("n", n)
        self.storage.sql.execute("INSERT INTO applied (op) VALUES (?)", op)
        return n

    async def count(self) -> int:
        """The count alone (the failover probe's read)."""
        return self.storage.get("n", 0)

    async def applied(self) -> dict:
        """The count and every applied increment id, in order of application."""
        ops = [
            row["op"] for row in self.storage.sql.execute("SELECT op FROM applied ORDER BY rowid")
        ]
        return {"n": self.storage.get("n", 0), "ops": ops}
