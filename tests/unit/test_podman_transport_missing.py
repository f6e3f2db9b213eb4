"""transport.missing: which Podman answers mean "the object is gone" (ok_missing lookups return None for them)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from edgekube.agent.runtime.podman.transport import Response, missing


class _Answer:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status_code = status
        self.text = json.dumps(body)

    def json(self) -> Any:
        return json.loads(self.text)


@pytest.mark.parametrize(
    ("status", "body", "gone"),
    [
        pytest.param(404, {"message": "no such container"}, True, id="404"),
        pytest.param(
            500,
            {"message": "container 13ce does not exist in database: no such container"},
            True,
            id="removed-during-inspect",
        ),
        pytest.param(500, {"message": "runc: exec failed"}, False, id="other-500"),
        pytest.param(409, {"message": "container is running"}, False, id="conflict"),
    ],
)
def test_a_container_removed_while_it_is_inspected_counts_as_missing(
    status: int, body: dict[str, Any], gone: bool
) -> None:
    """Podman 4.3 answers 500 "does not exist in database" when a container goes between its lookup and its read;
    a pod listing that inspects an exited container at that moment must see it gone, not fail (a CI run hit it)."""
    assert missing(cast(Response, _Answer(status, body))) is gone
