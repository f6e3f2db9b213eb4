"""Unit tests of `ekctl get -w` against the real master on the in-memory bus: the list first, then one line per
change pushed on the client's stream topic after each commit; level-triggered resync when the master lost the watch.

The exchange: ekctl subscribes edgekube/v1/clients/<id>/streams/<stream>, sends verb watch (the master registers
it and answers `opened`), lists, then prints each WatchEvent newer than what it listed.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.cli.cmd_watch import Watcher
from edgekube.cli.context import Context
from edgekube.cli.kinds import POD
from edgekube.cli.parser import build_parser
from edgekube.model.errors import ValidationError
from tests.support.apiserver import ApiServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(tmp_path / "cluster") as api:
        yield api


def pod_yaml(tmp_path: Path, name: str, app: str = "web") -> str:
    path = tmp_path / f"{name}-{app}.yaml"
    path.write_text(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\n"
        "spec: {containers: [{name: c, image: busybox}]}\n"
    )
    return str(path)


def watcher(server: ApiServer, *argv: str) -> tuple[Watcher, io.StringIO]:
    args: argparse.Namespace = build_parser().parse_args(["get", *argv])
    out = io.StringIO()
    ctx = Context(args, out=out, err=io.StringIO(), connector=server.connect)
    return Watcher(ctx, POD, None), out


def drain(w: Watcher) -> None:
    """What the watch loop does with what arrived (the inline broker has delivered it already)."""
    while not w.inbox.empty():
        w.handle(*w.inbox.get_nowait())


def names(out: io.StringIO) -> list[str]:
    return [line.split()[0] for line in out.getvalue().splitlines()]


def test_watch_prints_the_list_then_a_line_per_change_and_a_deletion(server: ApiServer, tmp_path: Path) -> None:
    server.ekctl("apply", "-f", pod_yaml(tmp_path, "a"))
    w, out = watcher(server, "pods", "-w")
    w.open()
    w.start(quiet=False)
    assert names(out) == ["NAME", "a"]
    server.ekctl("apply", "-f", pod_yaml(tmp_path, "b"))
    server.ekctl("label", "pod", "a", "tier=front")
    server.ekctl("delete", "pod", "b")
    drain(w)
    # b: added, modified (the scheduler's PodScheduled condition), then a's label, then b deleted.
    assert names(out) == ["NAME", "a", "b", "b", "a", "b"]
    assert out.getvalue().splitlines()[2].index("0/1") == out.getvalue().splitlines()[0].index("READY")
    assert len(server.master.watches) == 1
    w.close()
    assert len(server.master.watches) == 0


def test_a_selector_watch_shows_an_object_leaving_it_as_deleted(server: ApiServer, tmp_path: Path) -> None:
    server.ekctl("apply", "-f", pod_yaml(tmp_path, "a"))
    w, out = watcher(server, "pods", "-l", "app=web", "--watch-only", "-o", "name")
    w.open()
    w.start(quiet=True)
    assert out.getvalue() == ""
    server.ekctl("apply", "-f", pod_yaml(tmp_path, "other", app="db"))  # never matches: nothing printed
    server.ekctl("label", "pod", "a", "app=db", "--overwrite")  # leaves the selector
    drain(w)
    assert out.getvalue() == "pod/a\n"
    assert w.shown == {}


def test_events_not_newer_than_the_list_are_not_printed_twice(server: ApiServer, tmp_path: Path) -> None:
    w, out = watcher(server, "pods", "-w", "--no-headers")
    w.open()  # opened before the list: the create below is in both
    server.ekctl("apply", "-f", pod_yaml(tmp_path, "a"))
    w.start(quiet=False)
    drain(w)
    assert names(out) == ["a"]


def test_a_master_that_lost_the_watch_reopens_it_and_ekctl_lists_what_changed(
    server: ApiServer, tmp_path: Path
) -> None:
    server.ekctl("apply", "-f", pod_yaml(tmp_path, "a"))
    w, out = watcher(server, "pods", "-w", "--no-headers")
    w.open()
    w.start(quiet=False)
    server.master.watches._watches.clear()  # as a restarted master knows no watch
    server.ekctl("apply", "-f", pod_yaml(tmp_path, "b"))  # unseen: no watch at the master
    w.renew()  # the master answers `opened`: ekctl lists again
    server.ekctl("delete", "pod", "a")
    drain(w)
    assert names(out) == ["a", "b", "a"]


def test_watch_refuses_several_types_and_events(server: ApiServer) -> None:
    assert server.ekctl("get", "pods,rc", "-w") == 1
    with pytest.raises(ValidationError, match="events"):
        from edgekube.cli.kinds import EVENT  # noqa: PLC0415

        Watcher(Context(build_parser().parse_args(["get", "events", "-w"]), connector=server.connect), EVENT, None)
