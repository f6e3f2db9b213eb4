"""The `cable` fixture: one network namespace behind a veth the test can cut (a board or broker on its own link)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.netns import NetNode
from tests.support.prerequisites import require_mosquitto, require_netns


@pytest.fixture
def cable() -> Iterator[NetNode]:
    """A namespace with its veth up (`cut()`/`restore()` take the link down and up), deleted afterwards.

    Its tests run a Mosquitto on one side of it, so both prerequisites are checked before the namespace is made.
    """
    require_netns()
    require_mosquitto()
    net = NetNode.create()
    try:
        yield net
    finally:
        net.delete()
