"""The fence keeper: it stops the pods of an order past its deadline, once, and leaves renewed orders alone."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

from edgekube.agent.fencing_keeper import Order, due, file_name, keep, read_orders, running, write_order
from edgekube.model.errors import NotFoundError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.1  # each look at the clock moves it on: the keeper's loop advances time by itself
        return self.now


def test_only_orders_past_their_deadline_with_pods_are_due() -> None:
    orders = {"a": Order("v1", 10.0, ("p1",)), "b": Order("v2", 20.0, ("p2",)), "c": Order("v3", 5.0, ())}
    assert due(orders, 10.0) == {"a": orders["a"]}
    assert set(due(orders, 20.0)) == {"a", "b"}


def test_orders_are_written_atomically_and_withdrawn(tmp_path: Path) -> None:
    write_order(tmp_path, "nfs://s/v", Order("v", 1.5, ("p",)))
    assert read_orders(tmp_path) == {
        file_name("nfs://s/v"): (Order("v", 1.5, ("p",)).encode(), Order("v", 1.5, ("p",)))
    }
    write_order(tmp_path, "nfs://s/v", None)
    assert read_orders(tmp_path) == {}


def test_the_keeper_stops_an_expired_orders_pods_once_spares_a_renewed_one_and_exits_when_idle(tmp_path: Path) -> None:
    clock = Clock()
    write_order(tmp_path, "expired", Order("v1", 100.5, ("p1", "p2")))
    write_order(tmp_path, "renewed", Order("v2", 10_000.0, ("p3",)))
    stopped: list[str] = []

    def stop(uid: str) -> None:
        stopped.append(uid)
        if len(stopped) == 2:
            write_order(tmp_path, "renewed", None)  # the agent released that one meanwhile

    keep(tmp_path, stop, clock=clock, interval=0.0, idle_exit=5.0)
    assert stopped == ["p1", "p2"], "each pod of the expired order once, none of the renewed one"
    assert read_orders(tmp_path) == {}, "a carried-out order is deleted"


def test_a_pod_that_is_already_gone_counts_as_stopped(tmp_path: Path) -> None:
    def stop(uid: str) -> None:
        raise NotFoundError(f"pod {uid} not found")

    write_order(tmp_path, "k", Order("v", 0.0, ("gone",)))
    keep(tmp_path, stop, clock=Clock(), interval=0.0, idle_exit=1.0)
    assert read_orders(tmp_path) == {}


def test_one_keeper_per_directory_holds_its_lock(tmp_path: Path) -> None:
    assert not running(tmp_path)
    with open(tmp_path / "keeper.lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        seen: list[bool] = []
        thread = threading.Thread(target=lambda: seen.append(running(tmp_path)))
        thread.start()
        thread.join()
        assert seen == [True]
