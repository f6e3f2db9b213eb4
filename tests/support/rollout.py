"""Samples a rollout for the Deployment tests: (pods, Ready pods, images) after each write of the master's cache or
after each event of its watch stream."""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any

from edgekube.bus import topics
from edgekube.bus.paho import PahoBus
from edgekube.bus.protocol import Message
from edgekube.cli.cmd_watch import object_key, resource_version
from edgekube.master.controllers.replication.plan import is_ready
from edgekube.model.errors import BusError
from edgekube.model.watch import WATCH_LEASE_SECONDS, WatchEvent
from edgekube.model.wire import ApiRequest, ApiResponse, Verb
from tests.support.cluster import bus_config, wait_for

Sample = tuple[int, int, frozenset[str]]
_Key = tuple[str, str]


def _sample(pods: dict[_Key, dict[str, Any]]) -> Sample:
    ready = sum(1 for p in pods.values() if is_ready(p))
    return len(pods), ready, frozenset(p["spec"]["containers"][0]["image"] for p in pods.values())


class _Samples:
    """A list of samples, read from the test's thread while a listener appends to it: where it is, what came since."""

    samples: list[Sample]
    lock: threading.Lock

    def mark(self) -> int:
        with self.lock:
            return len(self.samples)

    def since(self, mark: int) -> list[Sample]:
        with self.lock:
            return self.samples[mark:]


class Sampler(_Samples):
    """Every Pod write of the master's cache (a `store.listen("Pod", ...)` listener, called on the master's thread):
    the `app=web` pods' count and Ready count after each, and their images."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.samples: list[Sample] = []
        self.lock = threading.Lock()

    def __call__(self, key: tuple[str, str], pod: dict[str, Any] | None) -> None:
        with self.lock:
            if pod is None or (pod["metadata"].get("labels") or {}).get("app") != "web":
                self.pods.pop(key, None)
            else:
                self.pods[key] = pod
            self.samples.append(_sample(self.pods))


def view_of(pod: dict[str, Any]) -> tuple[str, bool]:
    """A pod as EventSampler.view() shows it: (its first container's image, Ready)."""
    return str(pod["spec"]["containers"][0]["image"]), is_ready(pod)


class EventSampler(_Samples):
    """The pods of `selector` as the master's watch stream tells them: the stream `ekctl get pods -w` reads.

    Over its own PahoBus on the broker at `port` it subscribes `edgekube/v1/clients/<client-id>/streams/<stream>`,
    opens a Pod watch (verb watch), lists, and from then on applies each WatchEvent newer than the list (as
    cli/cmd_watch does), taking one sample after each: (pods, Ready pods, images). `changes` holds (type, pod name)
    per sample. It renews the watch every third of its lease. `lost` counts what made the view incomplete: a gap
    in the events' sequence, or the master having lost the watch (a renewal that opened it anew); the samples only
    stand for every instant while it stays 0.
    """

    def __init__(self, port: int, selector: str = "app=web", namespace: str = "default") -> None:
        self.pods: dict[_Key, dict[str, Any]] = {}
        self.samples: list[Sample] = []
        self.changes: list[tuple[str, str]] = []
        self.lost = 0
        self.lock = threading.Lock()
        self._early: list[WatchEvent] | None = []  # events heard before the list came back
        self._next_seq = 1
        self._stop = threading.Event()
        self.bus = PahoBus(bus_config(port))
        self.stream = uuid.uuid4().hex[:16]
        self.request = ApiRequest(
            verb=Verb.WATCH, kind="Pod", namespace=namespace, selector=selector, stream=self.stream
        )
        self.bus.subscribe(topics.client_stream(self.bus.config.client_id, self.stream), self._heard)
        self.bus.start(wait=10)
        try:
            assert self._watch(), "the master did not open the watch"
            listed = self._call(ApiRequest(verb=Verb.LIST, kind="Pod", namespace=namespace, selector=selector))
            with self.lock:
                self.pods = {object_key(p): p for p in listed.items or []}
                early, self._early = self._early or [], None
                for event in early:
                    self._apply(event)
        except BaseException:
            self.bus.close()
            raise
        self._renewer = threading.Thread(target=self._renew, name="event-sampler-renew", daemon=True)
        self._renewer.start()

    def _call(self, request: ApiRequest, timeout: float = 10.0) -> ApiResponse:
        response = ApiResponse.decode(self.bus.request(topics.API_REQUEST, request.encode(), timeout=timeout).payload)
        assert response.ok, response.error
        return response

    def _watch(self, seconds: float | None = None) -> bool:
        """Open or renew the watch (close it with seconds 0); True when the master opened it anew."""
        request = self.request if seconds is None else self.request.model_copy(update={"seconds": seconds})
        return bool((self._call(request).object or {}).get("opened"))

    def _renew(self) -> None:
        while not self._stop.wait(WATCH_LEASE_SECONDS / 3):
            try:
                opened = self._watch()
            except (BusError, AssertionError):
                opened = False  # unanswered: the next renewal (well within the lease) tries again
            if opened:
                with self.lock:
                    self.lost += 1

    def _heard(self, msg: Message) -> None:
        event = WatchEvent.decode(msg.payload, what="watch event")
        with self.lock:
            if self._early is not None:
                self._early.append(event)
            else:
                self._apply(event)

    def _apply(self, event: WatchEvent) -> None:
        if event.seq != self._next_seq:
            self.lost += 1
        self._next_seq = event.seq + 1
        key = object_key(event.object)
        known = self.pods.get(key)
        if event.type == "DELETED":
            if known is None:
                return  # gone before the list
            del self.pods[key]
        elif known is not None and resource_version(event.object) <= resource_version(known):
            return  # the list already showed it
        else:
            self.pods[key] = event.object
        self.changes.append((event.type, key[1]))
        self.samples.append(_sample(self.pods))

    def changes_since(self, mark: int) -> list[tuple[str, str]]:
        with self.lock:
            return self.changes[mark:]

    def view(self) -> dict[str, tuple[str, bool]]:
        """The pods the stream says exist now: name -> (image, Ready)."""
        with self.lock:
            return {name: view_of(pod) for (_, name), pod in self.pods.items()}

    def close(self) -> None:
        self._stop.set()
        self._renewer.join(timeout=15)
        with contextlib.suppress(BusError, AssertionError):  # else the master drops it once its lease runs out
            self._watch(seconds=0)
        self.bus.close()


def assert_stream_told_the_rollout(events: EventSampler, mark: int, gone: set[str], came: set[str]) -> list[Sample]:
    """The stream's samples since `mark`, once checked to be the whole rollout: no event lost, each of the `gone`
    pods' deletion and each of the `came` pods' creation among its changes (so at least one sample per pod)."""
    assert events.lost == 0, "the watch stream lost events: its samples do not cover every instant"
    changes = events.changes_since(mark)
    added = {name for kind, name in changes if kind == "ADDED"}
    deleted = {name for kind, name in changes if kind == "DELETED"}
    assert gone <= deleted, f"the stream did not tell the deletion of {sorted(gone - deleted)}"
    assert came <= added, f"the stream did not tell the creation of {sorted(came - added)}"
    samples = events.since(mark)
    assert len(samples) >= len(gone) + len(came)
    return samples


class StreamChecks:
    """For a Deployment test's environment: a cache `sampler`, a watch-stream `events` and the API's `web_pods()`."""

    sampler: Sampler
    events: EventSampler

    def web_pods(self) -> dict[str, tuple[str, bool]]:
        """The app=web pods as the API lists them: name -> (image, Ready), as EventSampler.view() has them."""
        raise NotImplementedError

    def marks(self) -> tuple[int, int, set[str]]:
        """Where both samplers are and the app=web pods, once the watch stream has told the API's state."""
        wait_for("the watch stream to tell the API's pods", lambda: self.events.view() == self.web_pods(), timeout=10)
        return self.sampler.mark(), self.events.mark(), set(self.web_pods())

    def streamed(self, mark: int, before: set[str]) -> list[Sample]:
        """The watch stream's samples since `mark`, once it has told the API's state and every pod that went or
        came since `before` (the pods at `mark`)."""
        wait_for("the watch stream to tell the API's pods", lambda: self.events.view() == self.web_pods(), timeout=10)
        after = set(self.web_pods())
        return assert_stream_told_the_rollout(self.events, mark, before - after, after - before)
