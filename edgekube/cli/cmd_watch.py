"""`ekctl get TYPE [NAME] -w|--watch-only`: the list, then one line per change, pushed by the master over MQTT.

Called by cmd_get. The exchange (docs/protocol.md, "Watch"): ekctl subscribes its stream topic
`edgekube/v1/clients/<client-id>/streams/<stream>`, asks the master to open the watch (verb watch), lists, and then
prints each WatchEvent newer than what it listed (resourceVersion), so nothing between the list and the watch is
lost or shown twice. It renews the watch every third of its lease; an answer saying the master opened it anew (the
master restarted, or another took over) makes it list again and print what changed meanwhile. It ends on Ctrl-C
(closing the watch), when the master's presence says offline, or when the master stops answering.
"""

from __future__ import annotations

import contextlib
import queue
import time
import uuid
from typing import Any

from edgekube.bus import topics
from edgekube.bus.protocol import Message
from edgekube.cli import columns, output
from edgekube.cli.cmd_get import check_selector
from edgekube.cli.context import Context
from edgekube.cli.errors import not_found
from edgekube.cli.kinds import EVENT, Resource, Targets
from edgekube.model.errors import BusError, EdgekubeError, NotFoundError, ValidationError
from edgekube.model.types import Obj
from edgekube.model.watch import WATCH_LEASE_SECONDS, WatchEvent
from edgekube.model.wire import ApiRequest, Presence, Verb

_Key = tuple[str, str]
GONE = "the master went offline (its presence on the broker says so): the watch ended"


def object_key(obj: Obj) -> _Key:
    """(namespace, name) of an object as the API lists or a watch event carries it."""
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def resource_version(obj: Obj) -> int:
    """Its resourceVersion as a number (0 when absent or not a number): which of two copies is newer."""
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "0")
    return int(text) if text.isdigit() else 0


class Printer:
    """Prints objects as `get` would, the table's header once (before the first line)."""

    def __init__(self, ctx: Context, res: Resource) -> None:
        self.ctx, self.res, self.args = ctx, res, ctx.args
        self.header_due = not self.args.no_headers

    def show(self, objects: list[Obj]) -> None:
        if not objects:
            return
        fmt = self.args.output
        if fmt in ("json", "yaml"):
            text = "".join(output.to_json(o) if fmt == "json" else "---\n" + output.to_yaml(o) for o in objects)
        elif fmt and fmt.startswith("jsonpath="):
            text = "".join(output.render_groups([(self.res, [o])], fmt, single=True) for o in objects)
        else:
            text = output.render_groups(
                [(self.res, objects)],
                fmt,
                all_namespaces=self.args.all_namespaces,
                headers=not self.args.no_headers,
                label_columns=columns.label_keys(getattr(self.args, "label_columns", None)),
                show_labels=getattr(self.args, "show_labels", False),
            )
            if not self.header_due and not self.args.no_headers:  # later lines: aligned to the header, not shown
                text = text.split("\n", 1)[1]
            self.header_due = False
        self.ctx.out.write(text)
        self.ctx.out.flush()


class Watcher:
    """One watch: what ekctl has shown (key → resourceVersion) and the events waiting to be printed."""

    def __init__(self, ctx: Context, res: Resource, name: str | None) -> None:
        if res == EVENT:
            raise ValidationError("watch: events are kept in the master's memory and cannot be watched yet")
        self.ctx, self.res, self.name = ctx, res, name
        self.client = ctx.client()
        self.session: Any = self.client.session
        if not hasattr(self.session, "subscribe"):
            raise ValidationError("watch needs an MQTT connection to the broker")
        self.stream = uuid.uuid4().hex[:16]
        self.inbox: queue.Queue[tuple[str, Message]] = queue.Queue()
        self.shown: dict[_Key, int] = {}
        self.next_seq = 1
        self.printer = Printer(ctx, res)
        args = ctx.args
        namespace = None if args.all_namespaces or not res.namespaced else ctx.namespace
        self.request = ApiRequest(
            verb=Verb.WATCH, kind=res.kind, namespace=namespace, name=name,
            selector=check_selector(args.selector), stream=self.stream,
        )  # fmt: skip

    def list(self) -> list[Obj]:
        if self.name is not None:
            try:
                return [self.client.get(self.res, self.ctx.namespace, self.name)]
            except NotFoundError:
                raise not_found(self.res, self.name, self.ctx.namespace) from None
        return self.client.query(self.res, self.request.namespace, self.request.selector)

    def open(self) -> None:
        self.session.subscribe(topics.client_stream(self.session.client_id, self.stream), self._heard("event"))
        self.session.subscribe(topics.MASTER_ONLINE, self._heard("presence"))
        self.client.watch(self.request)

    def _heard(self, what: str) -> Any:
        return lambda msg: self.inbox.put((what, msg))

    def start(self, *, quiet: bool) -> None:
        """The level-triggered start: the list as it is now (printed unless --watch-only)."""
        objects = self.list()
        sort_by = getattr(self.ctx.args, "sort_by", None)
        if sort_by:
            objects = columns.sort_by(objects, sort_by)
        self.shown = {object_key(o): resource_version(o) for o in objects}
        if not quiet:
            self.printer.show(objects)

    def resync(self, next_seq: int = 1) -> None:
        """After the master lost the watch: list again and print what changed since (deleted ones too)."""
        objects = {object_key(o): o for o in self.list()}
        changed = [o for k, o in objects.items() if self.shown.get(k) != resource_version(o)]
        for key in [k for k in self.shown if k not in objects]:
            del self.shown[key]  # gone while nobody watched: kubectl shows nothing either after a relist
        for obj in changed:
            self.shown[object_key(obj)] = resource_version(obj)
        self.printer.show(changed)
        self.next_seq = next_seq

    def event(self, msg: Message) -> bool:
        """Print one change if it is newer than what was shown; False when a message was lost (resync)."""
        event = WatchEvent.decode(msg.payload, what="watch event")
        if event.seq != self.next_seq:
            self.resync(next_seq=event.seq + 1)  # a change was lost (never on one QoS 1 session): list again
            return False
        self.next_seq += 1
        key, version = object_key(event.object), resource_version(event.object)
        if event.type == "DELETED":
            if key not in self.shown:
                return True
            del self.shown[key]
        elif key in self.shown and version <= self.shown[key]:
            return True  # already in the list (the watch was opened before it)
        else:
            self.shown[key] = version
        self.printer.show([event.object])
        return True

    def handle(self, what: str, msg: Message) -> None:
        """One message off the inbox: a change to print, or the master's presence (offline ends the watch)."""
        if what == "event":
            self.event(msg)
        elif msg.payload and not Presence.decode(msg.payload, what="master presence").online:
            raise EdgekubeError(GONE, hint="run the command again once the master is back")

    def renew(self) -> None:
        try:
            opened = self.client.watch(self.request)
        except BusError as exc:
            raise EdgekubeError(f"the master stopped answering: the watch ended ({exc})", hint=exc.hint) from None
        if opened:
            self.resync()

    def close(self) -> None:
        """Best effort: the master would drop the watch when its lease runs out anyway."""
        with contextlib.suppress(EdgekubeError):
            self.client.watch(self.request.model_copy(update={"seconds": 0.0}), timeout=1.0)

    def run(self, *, quiet: bool) -> int:
        self.open()
        try:
            self.start(quiet=quiet)
            renew_at = time.monotonic() + WATCH_LEASE_SECONDS / 3
            while True:
                try:
                    what, msg = self.inbox.get(timeout=max(0.0, renew_at - time.monotonic()))
                except queue.Empty:
                    self.renew()
                    renew_at = time.monotonic() + WATCH_LEASE_SECONDS / 3
                    continue
                self.handle(what, msg)
        finally:
            self.close()


def run(ctx: Context, targets: Targets) -> int:
    if len(targets) != 1 or len(targets[0][1]) > 1:
        raise ValidationError("watch is only supported on individual resources and resource collections")
    res, names = targets[0]
    return Watcher(ctx, res, names[0] if names else None).run(quiet=ctx.args.watch_only)
