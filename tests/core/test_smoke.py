import pytest

from durable_core.registry import get_namespace
from durable_core.testing import object_host
from tests import objects  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


async def test_increment_roundtrip(tmp_path):
    async with object_host(tmp_path / "objects"):
        c = get_namespace("tests.Counter").get_by_name("a")
        assert await c.increment() == 1
        assert await c.increment(by=2) == 3
        assert await c.value() == 3
