"""The SQL API of an object's storage: cursors, the authorizer, limits and migrations."""

from __future__ import annotations

import contextlib
import time

import pytest

from durable_core.exceptions import SqlError, StorageError, StorageLimitExceeded
from durable_core.storage import ObjectStorage
from durable_core.storage.database import ObjectDatabase
from tests.core.storage_helpers import reader, turn

RUNAWAY = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c"
RUNAWAY_INSERT = (
    "INSERT INTO t(x) WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) "
    "SELECT n FROM c"
)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "store" / "cd" / "obj.sqlite3"


@pytest.fixture
def db(path):
    database = ObjectDatabase(path, token=1)
    yield database
    database.close()


@pytest.fixture
def st(db):
    return ObjectStorage(db, sql_time_limit_ms=200)


@pytest.fixture
def people(db, st):
    """A committed user table ``people(id, name, age)`` with three rows."""
    with turn(db):
        st.sql.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, age REAL)")
        for name, age in [("ann", 31), ("bob", 42.5), ("cé", None)]:
            st.sql.execute("INSERT INTO people (name, age) VALUES (?, ?)", name, age)
        st.put("kv", "value")
    return st


# -- statements and cursors ----------------------------------------------------------


def test_create_insert_select_in_turns_is_committed(db, st, path):
    with turn(db):
        cur = st.sql.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
        assert cur.rows_written == 0
        assert st.sql.execute("INSERT INTO t VALUES (?, ?)", "a", 1).rows_written == 1
    with turn(db):
        st.sql.execute("INSERT INTO t VALUES (?, ?), (?, ?)", "b", 2, "c", 3)
        assert st.sql.execute("SELECT count(*) AS n FROM t").one() == {"n": 3}
    with reader(path) as other:
        rows = other.sql.execute("SELECT k, v FROM t ORDER BY k").raw()
    assert rows == [("a", 1), ("b", 2), ("c", 3)]


def test_cursor_rows_as_dicts_tuples_and_counters(people):
    cur = people.sql.execute("SELECT id, name, age AS years FROM people ORDER BY id")
    assert cur.column_names == ["id", "name", "years"]
    assert list(cur) == [
        {"id": 1, "name": "ann", "years": 31},
        {"id": 2, "name": "bob", "years": 42.5},
        {"id": 3, "name": "cé", "years": None},
    ]
    assert cur.fetchall() == list(cur)  # iterating twice gives the same rows
    assert cur.raw() == [(1, "ann", 31), (2, "bob", 42.5), (3, "cé", None)]
    assert len(cur) == 3
    assert cur.rows_read == 3
    assert cur.rows_written == 0


def test_rows_read_counts_rows_returned(people):
    assert people.sql.execute("SELECT * FROM people WHERE age > ?", 40).rows_read == 1
    assert people.sql.execute("SELECT * FROM people WHERE id < 0").rows_read == 0
    assert people.sql.execute("SELECT count(*) FROM people").rows_read == 1


def test_one_returns_the_single_row(people):
    assert people.sql.execute("SELECT name FROM people WHERE id = ?", 2).one() == {"name": "bob"}


@pytest.mark.parametrize("where", ["id < 0", "id > 1"])
def test_one_raises_sql_error_unless_exactly_one_row(people, where):
    cur = people.sql.execute(f"SELECT name FROM people WHERE {where}")
    with pytest.raises(SqlError):
        cur.one()


def test_rows_written_counts_changed_rows(db, people):
    with turn(db):
        upd = people.sql.execute("UPDATE people SET age = 1 WHERE age IS NOT NULL")
        assert upd.rows_written == 2
        assert upd.rows_read == 0
        assert upd.column_names == []
        assert upd.fetchall() == []
        assert people.sql.execute("DELETE FROM people").rows_written == 3
        assert people.sql.execute("SELECT * FROM people").rows_written == 0


def test_parameters_bind_every_sqlite_type(db, st):
    with turn(db):
        st.sql.execute("CREATE TABLE v (i, f, s, b, n)")
        st.sql.execute("INSERT INTO v VALUES (?, ?, ?, ?, ?)", 7, 2.5, "zoë 🚀", b"\x00\xff", None)
    assert st.sql.execute("SELECT * FROM v").raw() == [(7, 2.5, "zoë 🚀", b"\x00\xff", None)]


def test_syntax_error_raises_sql_error(db, st):
    with turn(db):
        with pytest.raises(SqlError):
            st.sql.execute("SELEKT 1")
        with pytest.raises(SqlError):
            st.sql.execute("SELECT * FROM no_such_table")
    assert issubclass(SqlError, StorageError)


def test_non_string_sql_raises_sql_error(db, st):
    with pytest.raises(SqlError):
        st.sql.execute(b"SELECT 1")


def test_failed_turn_undoes_its_sql_writes(db, people, path):
    with pytest.raises(RuntimeError), turn(db):
        people.sql.execute("INSERT INTO people (name) VALUES ('dan')")
        people.sql.execute("CREATE TABLE extra (x)")
        people.sql.execute("DELETE FROM people WHERE name = 'ann'")
        raise RuntimeError("turn fails")
    with reader(path) as other:
        names = [r["name"] for r in other.sql.execute("SELECT name FROM people ORDER BY id")]
        tables = other.sql.execute("SELECT name FROM sqlite_master WHERE name = 'extra'")
    assert names == ["ann", "bob", "cé"]
    assert tables.raw() == []


def test_sql_and_kv_writes_of_one_turn_commit_together(db, people, path):
    with turn(db, commit=False):
        people.sql.execute("INSERT INTO people (name) VALUES ('dan')")
        people.put("kv", "changed")
    with reader(path) as other:
        assert other.get("kv") == "value"
        assert other.sql.execute("SELECT count(*) AS n FROM people").one() == {"n": 3}
    db.commit()
    with reader(path) as other:
        assert other.get("kv") == "changed"
        assert other.sql.execute("SELECT count(*) AS n FROM people").one() == {"n": 4}


def test_a_write_statement_repeated_in_a_later_segment_stays_in_its_turn(db, st, path):
    """The same statement text, run again after a commit, joins the new turn's transaction."""
    insert = "INSERT INTO t VALUES (?)"
    with turn(db):
        st.sql.execute("CREATE TABLE t (x)")
        st.sql.execute(insert, 1)
    db.begin_turn()
    st.sql.execute(insert, 2)
    with reader(path) as other:  # not committed behind the turn's back
        assert other.sql.execute("SELECT x FROM t").raw() == [(1,)]
    db.end_turn(ok=False)
    db.commit()
    with turn(db, commit=False):
        st.sql.execute(insert, 3)
    with reader(path) as other:
        assert other.sql.execute("SELECT x FROM t").raw() == [(1,)]
    db.commit()
    with reader(path) as other:
        assert other.sql.execute("SELECT x FROM t ORDER BY x").raw() == [(1,), (3,)]


def test_sql_write_inside_transaction_block_is_undone_when_it_raises(db, people, path):
    with turn(db):
        with pytest.raises(ValueError), people.transaction():
            people.sql.execute("INSERT INTO people (name) VALUES ('dan')")
            raise ValueError("undo")
        people.sql.execute("INSERT INTO people (name) VALUES ('eve')")
    with reader(path) as other:
        names = [r["name"] for r in other.sql.execute("SELECT name FROM people ORDER BY id")]
    assert names == ["ann", "bob", "cé", "eve"]


# -- the authorizer ------------------------------------------------------------------

RESERVED_STATEMENTS = [
    "SELECT * FROM _do_kv",
    "SELECT * FROM _DO_KV",
    "SELECT * FROM main._Do_Kv",
    "SELECT value FROM _do_meta WHERE key = 'fence'",
    "SELECT * FROM _do_calls",
    "SELECT * FROM pragma_table_info('_do_kv')",
    "PRAGMA table_info(_do_kv)",
    "PRAGMA table_info(_DO_META)",
    "INSERT INTO _do_kv VALUES ('injected', '1')",
    "INSERT INTO _Do_Kv VALUES ('injected', '1')",
    "UPDATE _do_meta SET value = 999 WHERE key = 'fence'",
    "UPDATE _DO_META SET value = 0",
    "DELETE FROM _do_kv",
    "DELETE FROM _do_calls",
    "DROP TABLE _do_kv",
    "DROP TABLE _DO_META",
    "ALTER TABLE _do_kv RENAME TO stolen",
    "ALTER TABLE _do_meta ADD COLUMN x",
    "CREATE INDEX steal ON _do_kv (value)",
    "CREATE TRIGGER steal AFTER INSERT ON _do_kv BEGIN SELECT 1; END",
    "CREATE TRIGGER steal AFTER INSERT ON _DO_KV "
    "BEGIN UPDATE _do_meta SET value = 0 WHERE key = 'fence'; END",
    "CREATE TEMP TRIGGER steal BEFORE DELETE ON main._do_meta BEGIN SELECT 1; END",
    "CREATE TABLE _do_mine (x)",
    "CREATE TABLE _DO_OTHER (x)",
    "WITH x AS (SELECT * FROM _do_kv) SELECT * FROM x",
    "SELECT (SELECT count(*) FROM _do_kv)",
]


@pytest.mark.parametrize("sql", RESERVED_STATEMENTS)
def test_runtime_tables_are_out_of_reach(db, people, path, sql):
    with turn(db), pytest.raises(SqlError):
        people.sql.execute(sql)
    with reader(path) as other:
        assert other.list() == {"kv": "value"}
    assert db.stored_fence() == 1
    # The runtime's own writes still work and commit.
    with turn(db):
        people.put("after", 1)
    with reader(path) as other:
        assert other.list() == {"after": 1, "kv": "value"}


# The runtime's own statements, verbatim (durable_core/storage/database.py and kv.py).
RUNTIME_STATEMENTS = [
    ("SELECT value FROM _do_meta WHERE key='fence'", ()),
    ("INSERT OR REPLACE INTO _do_meta(key, value) VALUES ('fence', ?)", (999,)),
    ("INSERT OR REPLACE INTO _do_meta(key, value) VALUES (?, ?)", ("fence", 999)),
    ("SELECT value FROM _do_meta WHERE key=?", ("fence",)),
    ("SELECT value FROM _do_kv WHERE key=?", ("kv",)),
    ("INSERT OR REPLACE INTO _do_kv(key, value) VALUES (?, ?)", ("injected", "1")),
    ("DELETE FROM _do_kv WHERE key=?", ("kv",)),
    ("DELETE FROM _do_kv", ()),
    ("SELECT key, value FROM _do_kv ORDER BY key", ()),
    ("COMMIT", ()),
    ("RELEASE _do_turn", ()),
    ("ROLLBACK TO _do_turn", ()),
    ("SAVEPOINT _do_turn", ()),
    ("ROLLBACK", ()),
]


@pytest.mark.parametrize(("sql", "params"), RUNTIME_STATEMENTS)
def test_runtime_statements_repeated_by_user_sql_are_still_denied(db, people, path, sql, params):
    """A statement the runtime already ran must be authorized again when user SQL sends it."""
    # Let the runtime run its statements first (a failed turn, a kept turn, a commit).
    db.begin_turn()
    people.put("tmp", 1)
    db.end_turn(ok=False)
    with turn(db):
        people.put("tmp", 1)
        people.get("kv")
        people.list()
        people.delete("tmp")
        people.delete("missing")
        people.set_alarm(4_000_000_000)
        people.delete_alarm()
    db.begin_turn()
    people.put("uncommitted", 1)
    with pytest.raises(SqlError):
        people.sql.execute(sql, *params)
    db.end_turn(ok=False)
    db.commit()
    assert db.stored_fence() == 1
    with reader(path) as other:
        assert other.list() == {"kv": "value"}


def test_a_view_over_a_runtime_table_cannot_be_read(db, people):
    with turn(db), contextlib.suppress(SqlError):
        people.sql.execute("CREATE VIEW peek AS SELECT * FROM _do_kv")
    with pytest.raises(SqlError):
        people.sql.execute("SELECT * FROM peek")


def test_a_trigger_on_a_user_table_cannot_write_runtime_tables(db, people, path):
    with turn(db), contextlib.suppress(SqlError):
        people.sql.execute(
            "CREATE TRIGGER sneaky AFTER INSERT ON people "
            "BEGIN UPDATE _do_meta SET value = 0 WHERE key = 'fence'; "
            "INSERT INTO _do_kv VALUES ('injected', '1'); END"
        )
    with turn(db), contextlib.suppress(SqlError):
        people.sql.execute("INSERT INTO people (name) VALUES ('dan')")
    assert db.stored_fence() == 1
    with reader(path) as other:
        assert other.list() == {"kv": "value"}


def test_user_tables_and_sqlite_master_stay_readable(people):
    names = {r["name"] for r in people.sql.execute("SELECT name FROM sqlite_master")}
    assert "people" in names


@pytest.mark.parametrize(
    "sql",
    [
        "BEGIN",
        "BEGIN IMMEDIATE",
        "BEGIN EXCLUSIVE",
        "COMMIT",
        "END",
        "ROLLBACK",
        "SAVEPOINT mine",
        "RELEASE mine",
        "ROLLBACK TO mine",
        "ROLLBACK TO _do_turn",
        "RELEASE _do_turn",
        "begin transaction",
    ],
)
def test_transaction_statements_are_denied(db, people, path, sql):
    with turn(db):
        people.put("in turn", 1)
        with pytest.raises(SqlError):
            people.sql.execute(sql)
        people.put("still in turn", 2)
    with reader(path) as other:
        assert other.list() == {"in turn": 1, "kv": "value", "still in turn": 2}


def test_denied_commit_does_not_commit_a_turn_early(db, people, path):
    db.begin_turn()
    people.put("k", "uncommitted")
    with pytest.raises(SqlError):
        people.sql.execute("COMMIT")
    db.end_turn(ok=False)
    db.commit()
    with reader(path) as other:
        assert other.get("k") is None


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE ':memory:' AS other",
        "ATTACH ':memory:' AS other",
        "DETACH DATABASE main",
    ],
)
def test_attach_and_detach_are_denied(db, people, sql):
    with turn(db), pytest.raises(SqlError):
        people.sql.execute(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "PRAGMA journal_mode",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA writable_schema = 1",
        "PRAGMA writable_schema",
        "PRAGMA synchronous = OFF",
        "PRAGMA max_page_count = 1000000000",
        "PRAGMA foreign_keys = OFF",
        "PRAGMA query_only = 1",
        "PRAGMA user_version = 5",
        "PRAGMA main.user_version = 5",
        "PRAGMA USER_VERSION = 5",
        "PRAGMA user_version(5)",
        "SELECT * FROM pragma_journal_mode",
        "PRAGMA database_list",
        "PRAGMA integrity_check",
    ],
)
def test_pragmas_off_the_whitelist_are_denied(db, people, sql):
    with turn(db), pytest.raises(SqlError):
        people.sql.execute(sql)
    assert people.sql.execute("PRAGMA user_version").raw() == [(0,)]


def test_whitelisted_pragmas_are_allowed(people):
    info = people.sql.execute("PRAGMA table_info(people)")
    assert [r["name"] for r in info] == ["id", "name", "age"]
    assert [r["name"] for r in people.sql.execute("PRAGMA table_info('people')")] == [
        "id",
        "name",
        "age",
    ]
    assert people.sql.execute("PRAGMA user_version").raw() == [(0,)]
    assert people.sql.execute("PRAGMA main.user_version").raw() == [(0,)]
    tables = {r["name"] for r in people.sql.execute("SELECT * FROM pragma_table_list")}
    assert "people" in tables


def test_load_extension_is_denied(db, people):
    with pytest.raises(SqlError):
        people.sql.execute("SELECT load_extension('/nonexistent')")


# -- limits --------------------------------------------------------------------------


def _padded_select(size: int, pad: str = " ") -> str:
    """``SELECT 1`` padded with a comment to exactly ``size`` UTF-8 bytes."""
    head = "SELECT 1 AS one -- "
    room = size - len(head.encode())
    width = len(pad.encode())
    sql = head + pad * (room // width) + "x" * (room % width)
    assert len(sql.encode()) == size
    return sql


def test_statement_of_100000_bytes_is_allowed(st):
    assert st.sql.execute(_padded_select(100_000)).one() == {"one": 1}


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param(_padded_select(100_001), id="ascii"),
        pytest.param(_padded_select(100_001, "é"), id="multibyte-under-100k-chars"),
        pytest.param(_padded_select(400_000), id="much-longer"),
    ],
)
def test_statement_over_100000_bytes_raises_storage_limit_exceeded(db, st, sql):
    with turn(db), pytest.raises(StorageLimitExceeded):
        st.sql.execute(sql)


def test_100_bound_parameters_are_allowed(st):
    marks = ", ".join("?" * 100)
    row = st.sql.execute(f"SELECT {marks}", *range(100)).raw()
    assert row == [tuple(range(100))]


@pytest.mark.parametrize("count", [101, 500])
def test_more_than_100_bound_parameters_raise_storage_limit_exceeded(db, st, count):
    marks = ", ".join("?" * count)
    with turn(db), pytest.raises(StorageLimitExceeded):
        st.sql.execute(f"SELECT {marks}", *range(count))


def test_parameter_index_beyond_100_is_refused(db, st):
    with turn(db), pytest.raises(StorageError):
        st.sql.execute("SELECT ?101", 1)


def test_runaway_statement_is_stopped_by_the_time_limit(db, st, path):
    with turn(db):
        st.put("k", "kept")
    started = time.monotonic()
    with pytest.raises(SqlError, match="time limit"):
        st.sql.execute(RUNAWAY)
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 5
    # The connection is usable afterwards, and the limit applies per statement.
    assert st.sql.execute("SELECT 1 AS x").one() == {"x": 1}
    assert st.get("k") == "kept"


def test_runaway_read_does_not_lose_earlier_turns_of_the_segment(db, st, path):
    db.begin_turn()
    st.put("earlier", 1)
    db.end_turn(ok=True)
    db.begin_turn()
    with pytest.raises(SqlError):
        st.sql.execute(RUNAWAY)
    db.end_turn(ok=False)
    db.commit()
    with reader(path) as other:
        assert other.get("earlier") == 1


def test_runaway_write_commits_nothing_of_its_segment(db, st, path):
    """An interrupted INSERT makes SQLite undo the whole transaction.

    The runtime must then commit nothing: not the earlier turn (its reply must not be
    released as if it were stored), and not a later write, which would otherwise run in
    autocommit mode outside the turn and the fence check.
    """
    with turn(db):
        st.sql.execute("CREATE TABLE t (x)")
        st.put("committed", 1)
    db.begin_turn()
    st.put("earlier", 1)
    db.end_turn(ok=True)
    db.begin_turn()
    with pytest.raises(SqlError, match="time limit"):
        st.sql.execute(RUNAWAY_INSERT)
    with pytest.raises(StorageError):
        st.put("after interrupt", 1)
    with pytest.raises(StorageError):
        st.sql.execute("INSERT INTO t VALUES (1)")
    db.end_turn(ok=False)
    with pytest.raises(StorageError):
        db.commit()
    with reader(path) as other:
        assert other.list() == {"committed": 1}
        assert other.sql.execute("SELECT count(*) AS n FROM t").one() == {"n": 0}
    # The next segment works normally.
    with turn(db):
        st.put("next", 1)
    with reader(path) as other:
        assert other.list() == {"committed": 1, "next": 1}


def test_time_limit_is_configurable(tmp_path):
    db = ObjectDatabase(tmp_path / "t.sqlite3", token=1)
    st = ObjectStorage(db, sql_time_limit_ms=1000)
    try:
        started = time.monotonic()
        with pytest.raises(SqlError):
            st.sql.execute(RUNAWAY)
        assert time.monotonic() - started >= 0.9
    finally:
        db.close()


def test_database_size_limit_raises_storage_limit_exceeded(tmp_path):
    limit = 64 * 1024
    path = tmp_path / "small.sqlite3"
    db = ObjectDatabase(path, token=1, max_size=limit)
    st = ObjectStorage(db)
    try:
        with turn(db):
            st.sql.execute("CREATE TABLE blobs (b BLOB)")
            st.sql.execute("INSERT INTO blobs VALUES (?)", b"x" * 1000)
        with pytest.raises(StorageLimitExceeded), turn(db):
            for _ in range(100):
                st.sql.execute("INSERT INTO blobs VALUES (?)", b"y" * 4000)
        assert st.database_size <= limit
        with reader(path) as other:
            rows = other.sql.execute("SELECT length(b) AS n FROM blobs").fetchall()
        assert rows == [{"n": 1000}]
    finally:
        db.close()


def test_database_size_grows_after_writes(db, st):
    assert st.database_size == 0
    with turn(db):
        st.put("seed", 1)
    before = st.database_size
    assert before > 0
    with turn(db):
        st.sql.execute("CREATE TABLE blobs (b BLOB)")
        for _ in range(10):
            st.sql.execute("INSERT INTO blobs VALUES (?)", b"z" * 10_000)
    middle = st.database_size
    assert middle >= before + 100_000
    with turn(db):
        st.put("big", "v" * 200_000)
    assert st.database_size >= middle + 200_000


# -- migrations ----------------------------------------------------------------------


def _steps(log: list[str]):
    def step1(sql):
        log.append("step1")
        sql.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")

    def step2(sql):
        log.append("step2")
        sql.execute("ALTER TABLE items ADD COLUMN price REAL")

    return [step1, step2]


def test_migrate_runs_each_step_once_and_bumps_user_version(db, st, path):
    log: list[str] = []
    with turn(db):
        assert st.migrate(_steps(log)) == 2
    assert log == ["step1", "step2"]
    assert st.sql.execute("PRAGMA user_version").raw() == [(2,)]
    cols = [r["name"] for r in st.sql.execute("PRAGMA table_info(items)")]
    assert cols == ["id", "name", "price"]
    with turn(db):
        assert st.migrate(_steps(log)) == 2
    assert log == ["step1", "step2"]
    # Persisted: a fresh connection runs nothing either.
    with reader(path) as other:
        assert other.sql.execute("PRAGMA user_version").raw() == [(2,)]
        assert other.migrate(_steps(log)) == 2
    assert log == ["step1", "step2"]


def test_migrate_runs_only_new_steps(db, st):
    log: list[str] = []
    with turn(db):
        st.migrate(_steps(log)[:1])
    assert log == ["step1"]
    assert st.sql.execute("PRAGMA user_version").one() == {"user_version": 1}

    def step3(sql):
        log.append("step3")
        sql.execute("CREATE INDEX items_name ON items (name)")

    with turn(db):
        assert st.migrate([*_steps(log), step3]) == 3
    assert log == ["step1", "step2", "step3"]
    assert st.sql.execute("PRAGMA user_version").raw() == [(3,)]


def test_failing_migration_step_keeps_earlier_steps_and_version(db, st, path):
    log: list[str] = []

    def broken(sql):
        log.append("broken")
        sql.execute("INSERT INTO items (name) VALUES ('half-done')")
        raise RuntimeError("migration bug")

    with turn(db):
        with pytest.raises(RuntimeError):
            st.migrate([_steps(log)[0], broken])
        assert st.sql.execute("PRAGMA user_version").raw() == [(1,)]
    with reader(path) as other:
        assert other.sql.execute("PRAGMA user_version").raw() == [(1,)]
        assert other.sql.execute("SELECT count(*) AS n FROM items").one() == {"n": 0}
    with turn(db):
        assert st.migrate(_steps(log)) == 2
    assert log == ["step1", "broken", "step2"]


def test_migration_in_a_failed_turn_is_undone(db, st, path):
    log: list[str] = []
    db.begin_turn()
    st.migrate(_steps(log))
    db.end_turn(ok=False)
    db.commit()
    with reader(path) as other:
        assert other.sql.execute("PRAGMA user_version").raw() == [(0,)]
    with turn(db):
        assert st.migrate(_steps(log)) == 2
    assert log == ["step1", "step2", "step1", "step2"]
