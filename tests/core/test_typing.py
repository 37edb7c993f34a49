"""Typed stubs: a stub of ``Namespace[Counter]`` is checked by mypy against ``Counter``'s
methods (arguments and results), and still is an ObjectStub at run time."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from durable_core.objects import DurableObject
from durable_core.registry import Namespace, get_namespace
from durable_core.stubs import ObjectStub
from tests.objects import Counter

MYPY = [sys.executable, "-m", "mypy", "--follow-imports=silent", "--ignore-missing-imports"]
SAMPLE = """
from durable_core.objects import DurableObject
from durable_core.registry import Namespace, get_namespace
from durable_core.testing import fire_alarm


class Counter(DurableObject):
    namespace = "typing.Counter"

    async def increment(self, by: int = 1) -> int:
        return by


async def use() -> None:
    counter = get_namespace(Counter).get_by_name("hits")
    total: int = await counter.increment(by=2)
    wrong: str = await counter.increment()  # E: assignment (the result is an int)
    await counter.increment(by="two")  # E: arg-type
    await counter.decrement()  # E: attr-defined (no such method)
    print(counter.id.hex, total, wrong)
    await counter.call("increment", 2, timeout=5.0)
    await fire_alarm(counter)
    named: Namespace[Counter] = get_namespace("typing.Counter")
    await named.get_by_name("x").increment(by=[])  # E: arg-type
    untyped = get_namespace("typing.Counter").get_by_name("y")
    await untyped.anything()  # Namespace[Any]: not checked
"""


@pytest.mark.timeout(300)
def test_mypy_checks_calls_through_a_typed_stub(tmp_path):
    pytest.importorskip("mypy")
    sample = tmp_path / "sample.py"
    text = textwrap.dedent(SAMPLE).lstrip("\n")
    sample.write_text(text)
    expected = sorted(
        (number, line.split("# E: ")[1].split()[0])
        for number, line in enumerate(text.splitlines(), 1)
        if "# E: " in line
    )
    done = subprocess.run(
        [*MYPY, "--cache-dir", str(tmp_path / "cache"), str(sample)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    found = sorted(
        (int(line.split(":")[1]), line.rsplit("[", 1)[-1].rstrip("]"))
        for line in done.stdout.splitlines()
        if ": error:" in line
    )
    assert len(expected) == 4 and found == expected, done.stdout + done.stderr


def test_a_typed_stub_is_an_object_stub_at_run_time():
    namespace = get_namespace(Counter)
    assert isinstance(namespace, Namespace) and namespace.name == "tests.Counter"
    stub = namespace.get_by_name("typed")
    assert isinstance(stub, ObjectStub) and not isinstance(stub, DurableObject)
    assert stub.id == get_namespace("tests.Counter").id_from_name("typed")


def test_a_class_that_is_not_the_registered_one_has_no_namespace():
    from durable_core.exceptions import NamespaceNotFound

    class Unregistered(DurableObject):
        abstract = True

    with pytest.raises(NamespaceNotFound):
        get_namespace(Unregistered)
