"""The objects the chaos clients drive: a compare-and-set register, a ledger counter, and
a scratch ledger that the ``destroy_busy`` fault destroys while it is busy.

Both keep their state in memory as well as in storage, loaded in ``on_start``, as real
objects do (DESIGN §7: in-memory attributes are a cache). With one owner at a time the
cache is always right, since a failed turn or commit rebuilds the instance; under a
split brain a stale owner answers from its stale cache, which the history checkers see.
"""

from __future__ import annotations

import asyncio

from durable_core.objects import DurableObject


class Register(DurableObject):
    """One value with read, write and compare-and-set: the linearizability subject."""

    namespace = "chaos.Register"

    async def on_start(self) -> None:
        self.value = self.storage.get("v")

    async def read(self) -> int | None:
        """The current value (None before the first write)."""
        return self.value

    async def write(self, value: int) -> None:
        """Set the value."""
        self.storage.put("v", value)
        self.value = value

    async def slow_write(self, value: int, seconds: float) -> None:
        """Sleep ``seconds`` inside the turn (gate closed), then set the value: past the
        turn time limit the turn is cut and rolled back (TurnTimeout), never written."""
        await asyncio.sleep(seconds)
        self.storage.put("v", value)
        self.value = value

    async def cas(self, old: int | None, new: int) -> dict:
        """Set ``new`` if the value is ``old``; else report the value found."""
        if self.value != old:
            return {"ok": False, "value": self.value}
        self.storage.put("v", new)
        self.value = new
        return {"ok": True}


class Ledger(DurableObject):
    """A counter that also appends the id of every increment it applies, duplicates
    included, so that a checker can see an increment lost or applied twice."""

    namespace = "chaos.Ledger"

    async def on_start(self) -> None:
        self.storage.sql.execute("CREATE TABLE IF NOT EXISTS applied (op TEXT NOT NULL)")
        self.n = self.storage.get("n", 0)

    async def add(self, op: str) -> int:
        """Apply increment ``op``; returns the new count."""
        self.n += 1
        self.storage.put("n", self.n)
        self.storage.sql.execute("INSERT INTO applied (op) VALUES (?)", op)
        return self.n

    async def count(self) -> int:
        """The count alone (the failover probe's read)."""
        return self.n

    async def applied(self) -> dict:
        """The count and every applied increment id, in order of application."""
        ops = self.storage.sql.execute("SELECT op FROM applied ORDER BY rowid")
        return {"n": self.storage.get("n", 0), "ops": [row["op"] for row in ops]}


class Scratch(DurableObject):
    """A ledger that may be destroyed: ``add(op)`` appends every applied id (duplicates
    kept), ``destroy()`` deletes it all. Only the ``destroy_busy`` fault destroys; the
    registers and ledgers never are."""

    namespace = "chaos.Scratch"

    async def on_start(self) -> None:
        self.storage.sql.execute("CREATE TABLE IF NOT EXISTS applied (op TEXT NOT NULL)")
        self.n = self.storage.get("n", 0)

    async def add(self, op: str) -> int:
        """Apply ``op``; returns the count of this incarnation."""
        self.n += 1
        self.storage.put("n", self.n)
        self.storage.sql.execute("INSERT INTO applied (op) VALUES (?)", op)
        return self.n

    async def destroy(self) -> None:
        """Delete the object's storage once this turn commits."""
        self.ctx.destroy()

    async def count(self) -> int:
        """The count alone (the failover probe's read)."""
        return self.n

    async def applied(self) -> dict:
        """The count and every applied id since the last destroy, in order."""
        ops = self.storage.sql.execute("SELECT op FROM applied ORDER BY rowid")
        return {"n": self.storage.get("n", 0), "ops": [row["op"] for row in ops]}
