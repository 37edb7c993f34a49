"""The fence at the storage (DESIGN §4): the SQLite file is the final judge of ownership."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time

import pytest

from durable_core.exceptions import StaleOwner
from durable_core.storage import ObjectStorage
from durable_core.storage.database import ObjectDatabase


@pytest.fixture
def path(tmp_path):
    return tmp_path / "store" / "ef" / "obj.sqlite3"


@pytest.fixture
def open_dbs():
    """Databases opened by a test, closed at its end."""
    dbs: list[ObjectDatabase] = []
    yield dbs
    for db in dbs:
        db.close()


@pytest.fixture
def make(path, open_dbs):
    """``make(token, floor=0)``: a database and its storage on the shared path."""

    def factory(token: int, floor: int = 0) -> tuple[ObjectDatabase, ObjectStorage]:
        db = ObjectDatabase(path, token=token, floor=floor)
        open_dbs.append(db)
        return db, ObjectStorage(db)

    return factory


def write(db: ObjectDatabase, st: ObjectStorage, key: str, value: object) -> None:
    """One turn putting ``key`` then a commit."""
    db.begin_turn()
    ok = False
    try:
        st.put(key, value)
        ok = True
    finally:
        db.end_turn(ok=ok)
    db.commit()


def committed(path) -> tuple[int | None, dict]:
    """The stored fence and key-value data as committed in the file."""
    db = ObjectDatabase(path, token=0)
    try:
        return db.stored_fence(), ObjectStorage(db).list()
    finally:
        db.close()


async def until(condition, timeout: float = 5.0) -> None:
    """Bounded polling: wait (without blocking the loop) until ``condition()`` holds."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not condition():
        assert loop.time() < give_up, "condition not reached in time"
        await asyncio.sleep(0.005)


class Ticker:
    """A task that counts loop iterations and records the longest stall between them."""

    def __init__(self) -> None:
        self.ticks = 0
        self.longest_gap = 0.0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.001)
            now = time.monotonic()
            self.longest_gap = max(self.longest_gap, now - last)
            last = now
            self.ticks += 1

    def __enter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@contextlib.contextmanager
def write_lock_held(path):
    """Another connection (as another process would) holding BEGIN IMMEDIATE."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


# -- first write and activation --------------------------------------------------------


def test_new_file_written_with_token_3_stores_fence_3(make, path):
    db, st = make(3)
    assert not path.exists()
    write(db, st, "k", "v")
    assert db.stored_fence() == 3
    assert committed(path) == (3, {"k": "v"})


async def test_activation_of_a_new_file_stores_the_token(make, path):
    db, _ = make(7)
    await db.activate()
    assert committed(path) == (7, {})


@pytest.mark.parametrize("token", [3, 2, 1])
async def test_activate_with_the_same_or_a_lower_token_is_refused(make, path, token):
    owner, st = make(3)
    write(owner, st, "k", "owner's")
    other, _ = make(token)
    with pytest.raises(StaleOwner) as info:
        await other.activate()
    assert info.value.stored_fence == 3
    assert info.value.retryable is True
    assert committed(path) == (3, {"k": "owner's"})
    # The refusal changed nothing: the owner keeps writing.
    write(owner, st, "k", "still owner's")
    assert committed(path) == (3, {"k": "still owner's"})


async def test_higher_token_activates_and_fences_the_old_owner_out(make, path):
    old, old_st = make(3)
    write(old, old_st, "k", "from 3")
    new, new_st = make(4)
    await new.activate()
    assert committed(path) == (4, {"k": "from 3"})

    old.begin_turn()
    with pytest.raises(StaleOwner) as info:
        old_st.put("k", "stale write")
    assert info.value.stored_fence == 4
    old.end_turn(ok=False)
    old.commit()
    assert committed(path) == (4, {"k": "from 3"})

    write(new, new_st, "k", "from 4")
    assert committed(path) == (4, {"k": "from 4"})


async def test_fenced_out_owner_cannot_write_through_any_api(make, path):
    old, old_st = make(3)
    write(old, old_st, "k", "from 3")
    old.begin_turn()
    old_st.sql.execute("SELECT 1")  # reading is harmless
    old.end_turn(ok=True)
    new, _ = make(4)
    await new.activate()
    writes = [
        lambda: old_st.put("k", 1),
        lambda: old_st.put_many({"a": 1}),
        lambda: old_st.delete("k"),
        lambda: old_st.delete_many(["k"]),
        lambda: old_st.delete_all(),
        lambda: old_st.sql.execute("CREATE TABLE t (x)"),
        lambda: old_st.set_alarm(4_000_000_000),
        lambda: old_st.migrate([lambda sql: sql.execute("CREATE TABLE m (x)")]),
    ]
    for attempt in writes:
        old.begin_turn()
        with pytest.raises(StaleOwner):
            attempt()
        old.end_turn(ok=False)
        old.commit()
    assert committed(path) == (4, {"k": "from 3"})
    reader = ObjectDatabase(path, token=0)
    try:
        tables = ObjectStorage(reader).sql.execute("SELECT name FROM sqlite_master").raw()
    finally:
        reader.close()
    assert ("t",) not in tables
    assert ("m",) not in tables


async def test_fenced_out_owner_cannot_repeat_an_earlier_sql_write(make, path):
    """A statement the old owner already ran once is fence-checked again."""
    old, old_st = make(3)
    old.begin_turn()
    old_st.sql.execute("CREATE TABLE t (x)")
    old_st.sql.execute("INSERT INTO t VALUES (?)", "from 3")
    old.end_turn(ok=True)
    old.commit()
    new, _ = make(4)
    await new.activate()
    old.begin_turn()
    with pytest.raises(StaleOwner):
        old_st.sql.execute("INSERT INTO t VALUES (?)", "stale")
    old.end_turn(ok=False)
    old.commit()
    reader = ObjectDatabase(path, token=0)
    try:
        rows = ObjectStorage(reader).sql.execute("SELECT x FROM t").raw()
    finally:
        reader.close()
    assert rows == [("from 3",)]


async def test_two_hosts_handed_the_same_token_only_the_first_activates(make, path):
    """After a Redis failover two hosts can get the same token: strictness decides."""
    first, first_st = make(5)
    second, _ = make(5)
    await first.activate()
    with pytest.raises(StaleOwner):
        await second.activate()
    write(first, first_st, "k", "first")
    assert committed(path) == (5, {"k": "first"})


async def test_each_new_owner_needs_a_strictly_higher_token(make, path):
    for token in (1, 2, 5, 9):
        db, st = make(token)
        await db.activate()
        write(db, st, "owner", token)
        assert committed(path) == (token, {"owner": token})
    late, _ = make(9)
    with pytest.raises(StaleOwner):
        await late.activate()


# -- the fence floor of a file not yet made ------------------------------------------


def test_first_write_at_a_floor_refuses_the_floor_token(make, path):
    db, st = make(5)
    db.floor = 5
    db.begin_turn()
    with pytest.raises(StaleOwner) as info:
        st.put("k", "refused")
    assert info.value.stored_fence == 5
    db.end_turn(ok=False)
    db.commit()
    fence, data = committed(path)
    assert fence is None
    assert data == {}


def test_first_write_at_a_floor_accepts_a_higher_token(make, path):
    db, st = make(6, floor=5)
    write(db, st, "k", "accepted")
    assert committed(path) == (6, {"k": "accepted"})


@pytest.mark.parametrize("token", [4, 5])
async def test_activation_at_a_floor_refuses_tokens_up_to_the_floor(make, path, token):
    db, _ = make(token, floor=5)
    with pytest.raises(StaleOwner):
        await db.activate()
    fence, _ = committed(path)
    assert fence is None


async def test_activation_at_a_floor_accepts_the_next_token(make, path):
    refused, _ = make(5, floor=5)
    with pytest.raises(StaleOwner):
        await refused.activate()
    db, st = make(6, floor=5)
    await db.activate()
    write(db, st, "k", "v")
    assert committed(path) == (6, {"k": "v"})


async def test_a_stored_fence_above_the_floor_wins(make, path):
    owner, st = make(8)
    write(owner, st, "k", "v")
    low_floor, _ = make(7, floor=0)
    with pytest.raises(StaleOwner) as info:
        await low_floor.activate()
    assert info.value.stored_fence == 8


# -- busy handling -------------------------------------------------------------------


async def test_activate_waits_for_the_write_lock_without_blocking_the_loop(make, path):
    old, st = make(3)
    write(old, st, "k", "v")
    new, _ = make(4)
    with write_lock_held(path) as holder, Ticker() as ticker:
        activation = asyncio.create_task(new.activate(busy_deadline=30))
        await until(lambda: ticker.ticks >= 100)
        assert not activation.done()  # still waiting for the lock...
        assert committed(path)[0] == 3  # ...and has claimed nothing
        holder.execute("COMMIT")
        await asyncio.wait_for(activation, timeout=5)
    assert ticker.longest_gap < 0.5
    assert committed(path) == (4, {"k": "v"})


async def test_activate_waits_for_the_old_owners_segment_to_commit(make, path):
    old, old_st = make(3)
    write(old, old_st, "k", "v1")
    old.begin_turn()
    old_st.put("k", "v2")  # the old owner's segment holds the write lock
    old.end_turn(ok=True)
    new, new_st = make(4)
    with Ticker() as ticker:
        activation = asyncio.create_task(new.activate(busy_deadline=30))
        await until(lambda: ticker.ticks >= 100)
        assert not activation.done()
        old.commit()  # the segment started under fence 3 commits under fence 3
        await asyncio.wait_for(activation, timeout=5)
    assert committed(path) == (4, {"k": "v2"})
    old.begin_turn()
    with pytest.raises(StaleOwner):
        old_st.put("k", "v3")
    old.end_turn(ok=False)
    old.commit()
    write(new, new_st, "k", "v4")
    assert committed(path) == (4, {"k": "v4"})


async def test_activate_gives_up_with_stale_owner_after_its_busy_deadline(make, path):
    old, st = make(3)
    write(old, st, "k", "v")
    new, _ = make(4)
    loop = asyncio.get_running_loop()
    with write_lock_held(path), Ticker() as ticker:
        started = loop.time()
        with pytest.raises(StaleOwner):
            await new.activate(busy_deadline=0.3)
        waited = loop.time() - started
    assert 0.3 <= waited < 5
    assert ticker.ticks >= 10  # other tasks ran while it waited
    assert ticker.longest_gap < 0.5
    assert committed(path) == (3, {"k": "v"})
    # Once the lock is free, the same database can activate.
    await new.activate(busy_deadline=5)
    assert committed(path)[0] == 4


def test_a_write_while_another_connection_holds_the_lock_fails_fast(make, path):
    """ensure_writable never sleeps on the lock: it reports StaleOwner at once."""
    db, st = make(3)
    write(db, st, "k", "v")
    with write_lock_held(path):
        db.begin_turn()
        started = time.monotonic()
        with pytest.raises(StaleOwner):
            st.put("k", "blocked")
        assert time.monotonic() - started < 1
        db.end_turn(ok=False)
        db.commit()
    write(db, st, "k", "after")
    assert committed(path) == (3, {"k": "after"})
