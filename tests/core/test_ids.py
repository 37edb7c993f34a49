"""Object IDs (durable_core.ids) and the namespace helpers that make them."""

from __future__ import annotations

import re
import stat

import pytest
from django.test import override_settings

from durable_core.exceptions import InvalidObjectId, NamespaceNotFound
from durable_core.ids import ObjectId, get_id_key, reset_id_key_cache
from durable_core.registry import get_namespace
from durable_core.stubs import ObjectStub
from tests import objects  # noqa: F401  (registers tests.Counter)

NS = "tests.Counter"
HEX64 = re.compile(r"[0-9a-f]{64}")


def _with_id_key(settings, key_hex: str | None):
    """override_settings switching the configured ID key, with the key cache reset."""
    configured = dict(settings.DURABLE_OBJECTS, ID_KEY=key_hex)
    return override_settings(DURABLE_OBJECTS=configured)


def _flip(hex_id: str, index: int) -> str:
    """``hex_id`` with one hex digit changed (still lowercase hex)."""
    replacement = "0" if hex_id[index] != "0" else "1"
    return hex_id[:index] + replacement + hex_id[index + 1 :]


def _upper_one(hex_id: str) -> str:
    """``hex_id`` with its first letter digit uppercased (an "a" if it has none)."""
    index = next((i for i, c in enumerate(hex_id) if c.isalpha()), None)
    if index is None:
        return "A" + hex_id[1:]
    return hex_id[:index] + hex_id[index].upper() + hex_id[index + 1 :]


# -- from_name ------------------------------------------------------------------------


def test_from_name_is_64_lowercase_hex_and_keeps_the_name():
    oid = ObjectId.from_name(NS, "alice")
    assert HEX64.fullmatch(oid.hex)
    assert str(oid) == oid.hex
    assert oid.name == "alice"
    assert oid.namespace == NS
    assert oid.key == f"{NS}:{oid.hex}"


def test_from_name_is_deterministic():
    first = ObjectId.from_name(NS, "alice")
    second = ObjectId.from_name(NS, "alice")
    assert first.hex == second.hex
    assert first == second
    assert hash(first) == hash(second)


def test_from_name_survives_a_key_cache_reset():
    """The key is persisted (file), so a fresh process computes the same ID."""
    before = ObjectId.from_name(NS, "alice").hex
    reset_id_key_cache()
    assert ObjectId.from_name(NS, "alice").hex == before


def test_different_names_give_different_ids():
    assert ObjectId.from_name(NS, "alice").hex != ObjectId.from_name(NS, "bob").hex


def test_same_name_in_different_namespaces_gives_different_ids():
    a = ObjectId.from_name("tests.Counter", "alice")
    b = ObjectId.from_name("tests.Chain", "alice")
    assert a.hex != b.hex
    assert a != b


def test_unicode_names_are_accepted():
    oid = ObjectId.from_name(NS, "zoë-🚀")
    assert HEX64.fullmatch(oid.hex)
    assert oid.hex != ObjectId.from_name(NS, "zoe-🚀").hex


@pytest.mark.parametrize("bad", ["", None, 42, b"alice"])
def test_from_name_rejects_empty_or_non_string_names(bad):
    with pytest.raises(InvalidObjectId):
        ObjectId.from_name(NS, bad)


# -- new_unique -----------------------------------------------------------------------


def test_new_unique_ids_are_distinct_and_valid():
    ids = [ObjectId.new_unique(NS) for _ in range(200)]
    assert len({oid.hex for oid in ids}) == 200
    for oid in ids:
        assert HEX64.fullmatch(oid.hex)
        assert oid.name is None
        assert ObjectId.from_string(NS, oid.hex) == oid


# -- from_string ----------------------------------------------------------------------


def test_from_string_accepts_a_valid_id():
    named = ObjectId.from_name(NS, "alice")
    parsed = ObjectId.from_string(NS, named.hex)
    assert parsed == named
    assert parsed.hex == named.hex
    assert parsed.namespace == NS


def test_invalid_object_id_is_a_value_error():
    with pytest.raises(ValueError):
        ObjectId.from_string(NS, "nope")


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda h: h[:-1], id="too-short"),
        pytest.param(lambda h: h + "0", id="too-long"),
        pytest.param(lambda h: "", id="empty"),
        pytest.param(lambda h: h.upper(), id="uppercase"),
        pytest.param(lambda h: _upper_one(h), id="one-uppercase-digit"),
        pytest.param(lambda h: "g" + h[1:], id="non-hex"),
        pytest.param(lambda h: h[:32] + " " + h[33:], id="space"),
        pytest.param(lambda h: h + "\n", id="trailing-newline"),
    ],
)
def test_from_string_rejects_malformed_ids(mangle):
    good = ObjectId.from_name(NS, "alice").hex
    bad = mangle(good)
    assert bad != good
    with pytest.raises(InvalidObjectId):
        ObjectId.from_string(NS, bad)


@pytest.mark.parametrize("bad", [None, 123, b"0" * 64])
def test_from_string_rejects_non_strings(bad):
    with pytest.raises(InvalidObjectId):
        ObjectId.from_string(NS, bad)


def test_from_string_rejects_an_id_of_another_namespace():
    other = ObjectId.from_name("tests.Chain", "alice")
    with pytest.raises(InvalidObjectId):
        ObjectId.from_string(NS, other.hex)
    # ...while its own namespace accepts it.
    assert ObjectId.from_string("tests.Chain", other.hex) == other


def test_from_string_rejects_a_unique_id_of_another_namespace():
    other = ObjectId.new_unique("tests.Chain")
    with pytest.raises(InvalidObjectId):
        ObjectId.from_string(NS, other.hex)


@pytest.mark.parametrize("index", [0, 15, 16, 40, 63])
def test_from_string_rejects_a_tampered_id(index):
    """Changing any digit, of the body (0-31) or of the MAC (32-63), breaks the MAC."""
    good = ObjectId.new_unique(NS).hex
    with pytest.raises(InvalidObjectId):
        ObjectId.from_string(NS, _flip(good, index))


def test_from_string_rejects_a_random_hex_string():
    with pytest.raises(InvalidObjectId):
        ObjectId.from_string(NS, "ab" * 32)


# -- the ID key -----------------------------------------------------------------------


def test_ids_do_not_depend_on_secret_key():
    before_named = ObjectId.from_name(NS, "alice").hex
    unique = ObjectId.new_unique(NS).hex
    with override_settings(SECRET_KEY="a-completely-different-secret-key-" + "x" * 40):
        reset_id_key_cache()
        assert ObjectId.from_name(NS, "alice").hex == before_named
        assert ObjectId.from_string(NS, unique).hex == unique
    reset_id_key_cache()


def test_ids_change_with_a_different_id_key(settings):
    from_file = ObjectId.from_name(NS, "alice").hex
    unique = ObjectId.new_unique(NS).hex
    with _with_id_key(settings, "11" * 32):
        reset_id_key_cache()
        key_one = ObjectId.from_name(NS, "alice").hex
        with pytest.raises(InvalidObjectId):
            ObjectId.from_string(NS, unique)
    with _with_id_key(settings, "22" * 32):
        reset_id_key_cache()
        key_two = ObjectId.from_name(NS, "alice").hex
    reset_id_key_cache()
    assert len({from_file, key_one, key_two}) == 3
    # Back on the key file: the original ID again.
    assert ObjectId.from_name(NS, "alice").hex == from_file


def test_configured_id_key_wins_over_the_key_file(settings, isolated_durable_settings):
    """ID_KEY holding the key file's content gives the very same IDs."""
    from_file = ObjectId.from_name(NS, "alice").hex
    file_key = (isolated_durable_settings / "id_key").read_text().strip()
    with _with_id_key(settings, file_key):
        reset_id_key_cache()
        assert get_id_key() == bytes.fromhex(file_key)
        assert ObjectId.from_name(NS, "alice").hex == from_file
    reset_id_key_cache()


def test_id_key_file_is_created_on_first_use_with_mode_0600(isolated_durable_settings):
    key_file = isolated_durable_settings / "id_key"
    assert not key_file.exists()
    ObjectId.from_name(NS, "alice")
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    content = key_file.read_text().strip()
    assert HEX64.fullmatch(content)
    assert get_id_key() == bytes.fromhex(content)


def test_id_key_file_is_reused_not_regenerated(isolated_durable_settings):
    key_file = isolated_durable_settings / "id_key"
    ObjectId.new_unique(NS)
    content = key_file.read_text()
    reset_id_key_cache()
    ObjectId.new_unique(NS)
    assert key_file.read_text() == content


# -- namespaces -----------------------------------------------------------------------


def test_namespace_id_from_name_matches_object_id():
    ns = get_namespace(NS)
    oid = ns.id_from_name("alice")
    assert oid == ObjectId.from_name(NS, "alice")
    assert oid.namespace == NS
    assert oid.name == "alice"


def test_namespace_new_unique_id_belongs_to_the_namespace():
    ns = get_namespace(NS)
    a, b = ns.new_unique_id(), ns.new_unique_id()
    assert a != b
    assert a.namespace == NS
    assert ns.id_from_string(a.hex) == a
    with pytest.raises(InvalidObjectId):
        get_namespace("tests.Chain").id_from_string(a.hex)


def test_namespace_id_from_string_validates():
    ns = get_namespace(NS)
    good = ns.id_from_name("alice").hex
    assert ns.id_from_string(good).hex == good
    with pytest.raises(InvalidObjectId):
        ns.id_from_string(good.upper())
    with pytest.raises(InvalidObjectId):
        ns.id_from_string(_flip(good, 63))


def test_namespace_get_returns_a_stub_for_the_id():
    ns = get_namespace(NS)
    oid = ns.id_from_name("alice")
    stub = ns.get(oid)
    assert isinstance(stub, ObjectStub)
    assert stub.id == oid


def test_namespace_get_accepts_a_hex_string():
    ns = get_namespace(NS)
    oid = ns.new_unique_id()
    assert ns.get(oid.hex).id == oid


def test_namespace_get_refuses_an_id_of_another_namespace():
    other = get_namespace("tests.Chain").id_from_name("alice")
    with pytest.raises(InvalidObjectId):
        get_namespace(NS).get(other)
    with pytest.raises(InvalidObjectId):
        get_namespace(NS).get(other.hex)


def test_namespace_get_by_name_is_get_of_id_from_name():
    ns = get_namespace(NS)
    stub = ns.get_by_name("alice")
    assert isinstance(stub, ObjectStub)
    assert stub.id == ns.id_from_name("alice")
    assert stub.id.name == "alice"


def test_unknown_namespace_raises_namespace_not_found():
    with pytest.raises(NamespaceNotFound):
        get_namespace("tests.NoSuchThing")
    with pytest.raises(LookupError):
        get_namespace("nope")


def test_resolve_reads_64_hex_as_an_id_and_anything_else_as_a_name():
    counters = get_namespace("demo.Counter")
    assert counters.resolve("lobby").id == counters.id_from_name("lobby")
    made = counters.new_unique_id()
    assert counters.resolve(made.hex).id == made
    foreign = get_namespace("tests.Counter").new_unique_id().hex
    for bad in (foreign, foreign.upper(), "", "a" * 65, "a/b", "é", None):
        with pytest.raises(InvalidObjectId):
            counters.resolve(bad)
