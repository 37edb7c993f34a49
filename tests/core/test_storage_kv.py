"""The key-value API of an object's storage, driven through ObjectDatabase + ObjectStorage."""

from __future__ import annotations

import contextlib
import math

import pytest

from durable_core.exceptions import (
    InvalidArgument,
    StorageError,
    StorageLimitExceeded,
)
from durable_core.storage import ObjectStorage
from durable_core.storage.database import ObjectDatabase
from tests.core.storage_helpers import reader, turn

MIB = 1024 * 1024


@pytest.fixture
def path(tmp_path):
    return tmp_path / "store" / "ab" / "obj.sqlite3"


@pytest.fixture
def db(path):
    database = ObjectDatabase(path, token=1)
    yield database
    database.close()


@pytest.fixture
def st(db):
    return ObjectStorage(db)


def files_under(directory):
    return sorted(p for p in directory.rglob("*") if p.is_file())


# -- round trips ---------------------------------------------------------------------

VALUES = {
    "int": 42,
    "negative": -7,
    "big-int": 2**62,
    "float": 0.1,
    "tiny-float": 5e-324,
    "huge-float": 1.7976931348623157e308,
    "true": True,
    "false": False,
    "none": None,
    "empty-string": "",
    "unicode": "zoë 中文 🚀 \u0000 nul",
    "list": [1, "two", 3.5, None, [4, [5]]],
    "empty-list": [],
    "empty-dict": {},
    "nested": {"a": {"b": {"c": [1, {"d": "é"}]}}, "ünï": None, "n": 1.5},
}


@pytest.mark.parametrize("name", list(VALUES))
def test_put_get_round_trips_json_values(db, st, path, name):
    value = VALUES[name]
    with turn(db):
        st.put(name, value)
        assert st.get(name, "missing") == value  # read your own write in the turn
    assert st.get(name, "missing") == value
    with reader(path) as other:
        got = other.get(name, "missing")
    assert got == value
    assert type(got) is type(value)


def test_get_returns_default_for_missing_key_and_none_for_stored_none(db, st):
    with turn(db):
        st.put("present", None)
    assert st.get("absent") is None
    assert st.get("absent", "dflt") == "dflt"
    assert st.get("present", "dflt") is None


def test_put_overwrites(db, st, path):
    with turn(db):
        st.put("k", 1)
    with turn(db):
        st.put("k", {"v": 2})
    with reader(path) as other:
        assert other.get("k") == {"v": 2}


def test_get_many_returns_existing_keys_in_the_order_asked(db, st):
    with turn(db):
        st.put_many({"a": 1, "b": [2], "c": {"x": 3}})
    got = st.get_many(["c", "missing", "a"])
    assert got == {"c": {"x": 3}, "a": 1}
    assert list(got) == ["c", "a"]
    assert st.get_many([]) == {}


def test_get_many_handles_more_keys_than_one_query_binds(db, st):
    entries = {f"k{i:04d}": i for i in range(250)}
    with turn(db):
        st.put_many(entries)
    asked = [f"k{i:04d}" for i in reversed(range(0, 300, 2))]
    got = st.get_many(asked)
    assert got == {k: entries[k] for k in asked if k in entries}
    assert list(got) == [k for k in asked if k in entries]


def test_put_many_round_trips(db, st, path):
    entries = {"x": VALUES["nested"], "y": VALUES["list"], "z": None, "é": 0.25}
    with turn(db):
        st.put_many(entries)
    with reader(path) as other:
        assert other.get_many(list(entries)) == entries


def test_delete_reports_whether_the_key_existed(db, st, path):
    with turn(db):
        st.put_many({"a": 1, "b": 2})
    with turn(db):
        assert st.delete("a") is True
        assert st.delete("a") is False
        assert st.delete("never") is False
    with reader(path) as other:
        assert other.get_many(["a", "b"]) == {"b": 2}


def test_delete_many_counts_the_keys_that_existed(db, st, path):
    with turn(db):
        st.put_many({"a": 1, "b": 2, "c": 3, "d": 4})
    with turn(db):
        assert st.delete_many(["a", "c", "zz", "a"]) == 2
        assert st.delete_many([]) == 0
    with reader(path) as other:
        assert other.list() == {"b": 2, "d": 4}


def test_delete_all_removes_every_entry_but_not_sql_tables(db, st, path):
    with turn(db):
        st.put_many({f"k{i}": i for i in range(20)})
        st.sql.execute("CREATE TABLE notes(body TEXT)")
        st.sql.execute("INSERT INTO notes VALUES (?)", "kept")
    with turn(db):
        st.delete_all()
        assert st.list() == {}
    with reader(path) as other:
        assert other.list() == {}
        assert other.get("k3") is None
        assert other.sql.execute("SELECT body FROM notes").raw() == [("kept",)]
    with turn(db):
        st.put("again", 1)
    assert st.list() == {"again": 1}


# -- list ----------------------------------------------------------------------------

UNICODE_KEYS = ["", "A", "Z", "a", "aa", "ab", "b", "z", "é", "ë", "中", "\uffff", "😀", "🚀"]


def _fill(db, st, keys):
    with turn(db):
        st.put_many({k: i for i, k in enumerate(keys)})


def test_list_returns_every_entry_in_code_point_order(db, st):
    shuffled = UNICODE_KEYS[::-1][3:] + UNICODE_KEYS[::-1][:3]
    _fill(db, st, shuffled)
    listed = st.list()
    assert list(listed) == sorted(UNICODE_KEYS)
    assert listed == {k: shuffled.index(k) for k in UNICODE_KEYS}


def test_list_reverse(db, st):
    _fill(db, st, UNICODE_KEYS)
    assert list(st.list(reverse=True)) == sorted(UNICODE_KEYS, reverse=True)


def test_list_prefix_selects_exactly_the_keys_starting_with_it(db, st):
    keys = ["use", "user", "user:1", "user:10", "user:2", "user;", "users", "v", "usEr:1"]
    _fill(db, st, keys)
    assert list(st.list(prefix="user:")) == ["user:1", "user:10", "user:2"]
    assert list(st.list(prefix="user")) == ["user", "user:1", "user:10", "user:2", "user;", "users"]
    assert st.list(prefix="nothing") == {}
    assert list(st.list(prefix="")) == sorted(keys)


def test_list_prefix_with_unicode_and_edge_code_points(db, st):
    keys = [
        "é",
        "éa",
        "é😀",
        "ê",
        "中文",
        "中",
        "a\U0010ffff",
        "a\U0010ffffz",
        "b",
        "x\ud7ff",
        "x\ud7ffq",
        "x\ue000",
    ]
    _fill(db, st, keys)
    assert list(st.list(prefix="é")) == ["é", "éa", "é😀"]
    assert list(st.list(prefix="中")) == ["中", "中文"]
    # The last possible code point has no successor: the bound must still work.
    assert list(st.list(prefix="a\U0010ffff")) == ["a\U0010ffff", "a\U0010ffffz"]
    assert list(st.list(prefix="\U0010ffff")) == []
    # The successor of U+D7FF skips the surrogate block.
    assert list(st.list(prefix="x\ud7ff")) == ["x\ud7ff", "x\ud7ffq"]


def test_list_start_is_inclusive_and_end_exclusive(db, st):
    keys = ["a", "b", "c", "d", "e"]
    _fill(db, st, keys)
    assert list(st.list(start="b")) == ["b", "c", "d", "e"]
    assert list(st.list(end="d")) == ["a", "b", "c"]
    assert list(st.list(start="b", end="d")) == ["b", "c"]
    assert list(st.list(start="bb", end="dd")) == ["c", "d"]
    assert st.list(start="c", end="c") == {}
    assert st.list(start="d", end="b") == {}
    assert list(st.list(start="b", end="e", reverse=True)) == ["d", "c", "b"]


def test_list_limit(db, st):
    keys = [f"k{i}" for i in range(10)]
    _fill(db, st, keys)
    assert list(st.list(limit=3)) == ["k0", "k1", "k2"]
    assert list(st.list(limit=3, reverse=True)) == ["k9", "k8", "k7"]
    assert st.list(limit=0) == {}
    assert len(st.list(limit=100)) == 10
    assert list(st.list(start="k4", limit=2)) == ["k4", "k5"]


def test_list_combines_prefix_start_end_reverse_and_limit(db, st):
    keys = ["a:1", "a:2", "a:3", "a:4", "a:5", "b:1", "a"]
    _fill(db, st, keys)
    got = st.list(prefix="a:", start="a:2", end="a:5", reverse=True, limit=2)
    assert list(got) == ["a:4", "a:3"]
    assert got == {"a:4": 3, "a:3": 2}
    assert list(st.list(prefix="a:", start="0")) == ["a:1", "a:2", "a:3", "a:4", "a:5"]


@pytest.mark.parametrize("limit", [-1, 1.5, "3"])
def test_list_rejects_a_bad_limit(db, st, limit):
    _fill(db, st, ["a"])
    with pytest.raises(InvalidArgument):
        st.list(limit=limit)


# -- a store that was never written --------------------------------------------------


def test_reading_a_never_written_store_creates_no_file(db, st, path, tmp_path):
    assert st.get("k") is None
    assert st.get("k", 5) == 5
    assert st.get_many(["a", "b"]) == {}
    assert st.list() == {}
    assert st.list(prefix="p", reverse=True, limit=3) == {}
    assert st.database_size == 0
    assert st.get_alarm() is None
    assert not path.exists()
    assert files_under(tmp_path) == []


def test_deleting_in_a_never_written_store_creates_no_file(db, st, path, tmp_path):
    with turn(db):
        assert st.delete("k") is False
        assert st.delete_many(["a", "b"]) == 0
        st.delete_all()
    assert not path.exists()
    assert files_under(tmp_path) == []


def test_first_write_creates_the_file(db, st, path):
    with turn(db):
        st.put("k", 1)
    assert path.exists()


# -- turns and transactions ----------------------------------------------------------


def test_failed_turn_rolls_back_only_its_own_writes(db, st, path):
    with turn(db):
        st.put_many({"a": "committed", "c": "committed"})
    db.begin_turn()
    st.put("a", "turn 1")
    assert db.end_turn(ok=True) is True
    db.begin_turn()
    st.put("a", "turn 2")
    st.put("b", "turn 2")
    st.delete("c")
    assert st.get("a") == "turn 2"
    assert db.end_turn(ok=False) is False
    # Same transaction, not yet committed: turn 1 is kept, turn 2 undone.
    assert st.list() == {"a": "turn 1", "c": "committed"}
    db.commit()
    with reader(path) as other:
        assert other.list() == {"a": "turn 1", "c": "committed"}


def test_failed_turn_between_kept_turns(db, st, path):
    db.begin_turn()
    st.put("one", 1)
    db.end_turn(ok=True)
    db.begin_turn()
    st.put("two", 2)
    db.end_turn(ok=False)
    db.begin_turn()
    st.put("three", 3)
    db.end_turn(ok=True)
    db.commit()
    with reader(path) as other:
        assert other.list() == {"one": 1, "three": 3}


def test_turn_raising_in_the_helper_is_rolled_back(db, st, path):
    with turn(db):
        st.put("k", "old")
    with pytest.raises(RuntimeError), turn(db):
        st.put("k", "new")
        raise RuntimeError("boom")
    assert st.get("k") == "old"
    with reader(path) as other:
        assert other.get("k") == "old"


def test_writes_are_invisible_to_other_connections_until_commit(db, st, path):
    with turn(db):
        st.put("k", "v1")
    with turn(db, commit=False):
        st.put("k", "v2")
    with reader(path) as other:
        assert other.get("k") == "v1"
    db.commit()
    with reader(path) as other:
        assert other.get("k") == "v2"


def test_rollback_discards_every_turn_of_the_segment(db, st, path):
    with turn(db):
        st.put("k", "committed")
    with turn(db, commit=False):
        st.put("k", "a")
    with turn(db, commit=False):
        st.put("other", "b")
    db.rollback()
    assert st.list() == {"k": "committed"}
    with reader(path) as other:
        assert other.list() == {"k": "committed"}


def test_transaction_block_that_raises_is_undone(db, st, path):
    with turn(db):
        st.put("outer", 1)
        with pytest.raises(KeyError), st.transaction():
            st.put("inner", 2)
            st.put("outer", "changed")
            raise KeyError("undo")
        assert st.list() == {"outer": 1}
        st.put("after", 3)
    with reader(path) as other:
        assert other.list() == {"after": 3, "outer": 1}


def test_nested_transaction_rollback_keeps_the_outer_block(db, st, path):
    with turn(db), st.transaction():
        st.put("level1", 1)
        with pytest.raises(ValueError), st.transaction():
            st.put("level2", 2)
            with st.transaction():
                st.put("level3", 3)
            raise ValueError("undo level 2 and 3")
        st.put("level1b", 1)
    with reader(path) as other:
        assert other.list() == {"level1": 1, "level1b": 1}


def test_outer_transaction_rollback_undoes_completed_inner_blocks(db, st, path):
    with turn(db):
        st.put("base", 0)
        with pytest.raises(ValueError), st.transaction():
            with st.transaction():
                st.put("inner", 1)
            assert st.get("inner") == 1
            raise ValueError("undo everything in the block")
    with reader(path) as other:
        assert other.list() == {"base": 0}


def test_transaction_inside_a_failed_turn_is_undone_with_the_turn(db, st, path):
    with turn(db):
        st.put("k", "committed")
    db.begin_turn()
    with st.transaction():
        st.put("k", "in block")
    db.end_turn(ok=False)
    db.commit()
    with reader(path) as other:
        assert other.get("k") == "committed"


# -- limits and bad input ------------------------------------------------------------


@pytest.mark.parametrize("key", ["k" * 2048, "é" * 1024, "🚀" * 512, "a" * 2044 + "🚀"])
def test_keys_up_to_2048_utf8_bytes_are_accepted(db, st, path, key):
    with turn(db):
        st.put(key, "v")
    with reader(path) as other:
        assert other.get(key) == "v"
        assert other.list() == {key: "v"}


@pytest.mark.parametrize("key", ["k" * 2049, "é" * 1024 + "a", "🚀" * 513, "a" * 2045 + "🚀"])
def test_keys_over_2048_utf8_bytes_are_refused(db, st, path, tmp_path, key):
    with turn(db):
        with pytest.raises(StorageLimitExceeded):
            st.put(key, "v")
        with pytest.raises(StorageLimitExceeded):
            st.put_many({"fine": 1, key: "v"})
        with pytest.raises(StorageLimitExceeded):
            st.get(key)
    assert not path.exists()
    assert files_under(tmp_path) == []


def test_key_limit_errors_are_value_errors_and_storage_errors():
    assert issubclass(StorageLimitExceeded, ValueError)
    assert issubclass(StorageLimitExceeded, StorageError)
    assert issubclass(InvalidArgument, TypeError)


@pytest.mark.parametrize("key", [1, 1.5, None, b"bytes", ("t",), True])
def test_non_string_keys_are_refused(db, st, path, tmp_path, key):
    with turn(db):
        calls = [
            lambda: st.put(key, 1),
            lambda: st.put_many({"fine": 1, key: 2}),
            lambda: st.get(key),
            lambda: st.get_many(["fine", key]),
            lambda: st.delete(key),
            lambda: st.delete_many(["fine", key]),
        ]
        if key is not None:  # list(start=None) means "no bound"
            calls += [
                lambda: st.list(start=key),
                lambda: st.list(end=key),
                lambda: st.list(prefix=key),
            ]
        for call in calls:
            with pytest.raises(InvalidArgument):
                call()
    assert not path.exists()
    assert files_under(tmp_path) == []


def test_keys_with_lone_surrogates_are_refused(db, st, path):
    with turn(db), pytest.raises(InvalidArgument):
        st.put("bad\ud800", 1)
    assert not path.exists()


def test_value_of_exactly_2_mib_serialized_is_accepted(db, st, path):
    value = "x" * (2 * MIB - 2)  # plus two quotes: exactly 2 MiB of JSON
    with turn(db):
        st.put("big", value)
    with reader(path) as other:
        assert other.get("big") == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("x" * (2 * MIB - 1), id="ascii-one-byte-over"),
        pytest.param("é" * MIB, id="multibyte-over-by-bytes-not-chars"),
        pytest.param(["y" * MIB, "y" * MIB], id="list"),
        pytest.param({"a": "z" * (2 * MIB)}, id="dict"),
    ],
)
def test_values_over_2_mib_serialized_are_refused_and_write_nothing(db, st, path, value):
    with turn(db):
        st.put("k", "old")
    with turn(db):
        with pytest.raises(StorageLimitExceeded):
            st.put("k", value)
        with pytest.raises(StorageLimitExceeded):
            st.put_many({"other": 1, "k": value})
        assert st.get_many(["k", "other"]) == {"k": "old"}
    with reader(path) as other:
        assert other.list() == {"k": "old"}


class _Opaque:
    pass


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({1, 2}, id="set"),
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
        pytest.param(-math.inf, id="-inf"),
        pytest.param({"nested": [math.nan]}, id="nested-nan"),
        pytest.param(_Opaque(), id="object"),
        pytest.param(b"bytes", id="bytes"),
        pytest.param({"k": {1, 2}}, id="nested-set"),
        pytest.param({("t",): 1}, id="tuple-key"),
        pytest.param("lone \ud800 surrogate", id="lone-surrogate"),
        pytest.param(1 + 2j, id="complex"),
    ],
)
def test_non_json_values_are_refused_and_write_nothing(db, st, path, tmp_path, value):
    with turn(db):
        with pytest.raises(InvalidArgument):
            st.put("k", value)
        with pytest.raises(InvalidArgument):
            st.put_many({"fine": 1, "k": value})
    assert not path.exists()
    assert files_under(tmp_path) == []
    # On an existing store, the previous value stays.
    with turn(db):
        st.put("k", "old")
    with turn(db), pytest.raises(InvalidArgument):
        st.put("k", value)
    with reader(path) as other:
        assert other.list() == {"k": "old"}


# -- the database size limit ---------------------------------------------------------


def test_full_database_raises_storage_limit_exceeded_and_commits_nothing_partial(path):
    """SQLite may undo the whole transaction on SQLITE_FULL: then nothing may commit.

    Whatever SQLite undid, the earlier turn's write is on disk exactly when commit()
    reports success, a later write never slips in outside the transaction, and the
    failed turn's writes are never stored.
    """
    db = ObjectDatabase(path, token=1, max_size=64 * 1024)
    st = ObjectStorage(db)
    try:
        with turn(db):
            st.put("small", "committed")
        db.begin_turn()
        st.put("pending", "earlier turn")
        db.end_turn(ok=True)
        db.begin_turn()
        with pytest.raises(StorageLimitExceeded):
            for i in range(64):
                st.put(f"big{i}", "x" * 4000)
        db.end_turn(ok=False)
        db.begin_turn()
        with contextlib.suppress(StorageError):
            st.put("late", "later turn")
        db.end_turn(ok=True)
        try:
            db.commit()
            committed = True
        except StorageError:
            committed = False
        with reader(path) as other:
            stored = other.list()
        assert stored["small"] == "committed"
        assert ("pending" in stored) is committed
        assert ("late" in stored) is committed
        assert not any(k.startswith("big") for k in stored)
        assert st.database_size <= 64 * 1024
        # The store keeps working in the next segment.
        with turn(db):
            st.put("after", 1)
        with reader(path) as other:
            assert other.get("after") == 1
    finally:
        db.close()
