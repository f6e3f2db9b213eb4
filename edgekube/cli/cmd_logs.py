"""`ekctl logs POD|-l SELECTOR [-c C] [--tail N] [-p] [--since D|--since-time T] [--timestamps] [--prefix]`.

The master forwards each request to the pod's node agent, which reads the container's log from Podman. Podman keeps
a container's lines across its restarts (the agent restarts the same container), so `--previous` asks for the
window of the last terminated run, from the times its status records (lastState.terminated.startedAt to its
finishedAt, before the current run started).
"""

from __future__ import annotations

import math
import queue
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from edgekube.bus import topics
from edgekube.bus.protocol import Message
from edgekube.cli.context import Context
from edgekube.cli.errors import not_found
from edgekube.cli.kinds import POD, split_args
from edgekube.cli.status import items, section
from edgekube.model.errors import EdgekubeError, NotFoundError, ValidationError
from edgekube.model.labels import parse_selector
from edgekube.model.types import Obj
from edgekube.model.watch import FOLLOW_LEASE_SECONDS, LOG_WINDOW_CHUNKS, LogChunk
from edgekube.model.wire import ApiRequest, Verb

#: kubectl's default --tail with a selector.
SELECTOR_TAIL = 10
#: kubectl's default --max-log-requests: containers one `logs -f -l` follows at most.
MAX_FOLLOWS = 5


def _containers(pod: Obj) -> tuple[list[str], list[str]]:
    spec = section(pod, "spec")
    return [str(c.get("name")) for c in items(spec, "containers")], [
        str(c.get("name")) for c in items(spec, "initContainers")
    ]


def _default_container(ctx: Context, pod: Obj, *, announce: bool = True) -> str | None:
    """Pick the first container as kubectl does when -c is absent, announcing it when there are several."""
    containers, inits = _containers(pod)
    if announce and len(containers) + len(inits) > 1:
        listed = ", ".join([*containers, *(f"{c} (init)" for c in inits)])  # kubectl's words
        ctx.err.write(f'Defaulted container "{containers[0]}" out of: {listed}\n')
    return containers[0] if containers else None


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def previous_window(pod: Obj, container: str) -> tuple[str, str]:
    """(since, until) of the container's last terminated run, from its status; NotFoundError when it has none."""
    status = section(pod, "status")
    statuses = [*items(status, "containerStatuses"), *items(status, "initContainerStatuses")]
    found = next((s for s in statuses if s.get("name") == container), {})
    last = section(section(found, "lastState"), "terminated")
    name = section(pod, "metadata").get("name", "")
    if not last.get("startedAt"):
        raise NotFoundError(f'previous terminated container "{container}" in pod "{name}" not found')
    since = _time(str(last["startedAt"]))
    # Times are whole seconds: the run ended within the second after finishedAt, and before the current run began.
    until = _time(str(last.get("finishedAt") or last["startedAt"])) + timedelta(seconds=1)
    current = section(section(found, "state"), "running").get("startedAt")
    if current:
        until = min(until, _time(str(current)) - timedelta(microseconds=1))
    return _rfc3339(since), until.isoformat().replace("+00:00", "Z")


def _pod(ctx: Context, name: str) -> Obj:
    try:
        return ctx.client().get(POD, ctx.namespace, name)
    except NotFoundError:
        raise not_found(POD, name, ctx.namespace) from None


def _one(ctx: Context, pod: Obj, container: str | None, tail: int | None, prefix: bool) -> str:
    args = ctx.args
    name = str(section(pod, "metadata").get("name", ""))
    since_time, until_time = args.since_time, None
    if args.previous:
        if container is None:
            raise ValidationError(f"pod {name} has no containers")
        since_time, until_time = previous_window(pod, container)
    since_seconds = math.ceil(args.since) if args.since else None
    text = ctx.client().logs(
        ctx.namespace, name, container, tail,
        since_time=since_time, since_seconds=since_seconds, until_time=until_time, timestamps=args.timestamps,
    )  # fmt: skip
    if prefix:
        head = f"[pod/{name}/{container}] "
        text = "".join(head + line for line in text.splitlines(keepends=True))
    return text if not text or text.endswith("\n") else text + "\n"


@dataclass
class _Followed:
    """One followed container: its request (renewals carry the ack), what was printed and acknowledged."""

    name: str
    container: str | None
    request: ApiRequest
    printed: int = 0
    acked: int = 0


def follow(ctx: Context, targets: list[tuple[str, str | None]], tail: int | None, *, prefix: bool) -> int:
    """`logs -f`: each node pushes LogChunks on this client's streams; acknowledged and renewed through the master.

    Several containers (`-l`) are followed at once, each on a stream of its own, lines prefixed; ekctl ends when
    every one has ended.
    """
    args = ctx.args
    client = ctx.client()
    session: Any = client.session
    if not hasattr(session, "subscribe"):
        raise ValidationError("logs -f needs an MQTT connection to the broker")
    inbox: queue.Queue[Message] = queue.Queue()
    followed: dict[str, _Followed] = {}
    for name, container in targets:
        stream = uuid.uuid4().hex[:16]
        session.subscribe(topics.client_stream(session.client_id, stream), inbox.put)
        request = ApiRequest(
            verb=Verb.LOGS, kind="Pod", namespace=ctx.namespace, name=name, container=container, tail=tail,
            since_time=args.since_time, since_seconds=math.ceil(args.since) if args.since else None,
            timestamps=args.timestamps, follow=True, stream=stream, ack=0,
        )  # fmt: skip
        followed[stream] = _Followed(name, container, request)

    def renew(stream: str, one: _Followed) -> None:
        try:
            client.follow(one.request.model_copy(update={"ack": one.printed}))
        except NotFoundError as exc:  # the pod went away between two chunks: this stream is over
            ctx.err.write(f"logs -f of {one.name} ended: {exc}\n")
            del followed[stream]
        except EdgekubeError as exc:
            raise EdgekubeError(f"logs -f of {one.name} ended: {exc}", hint=exc.hint) from None
        one.acked = one.printed

    for stream, started in list(followed.items()):
        renew(stream, started)
    renew_at = time.monotonic() + FOLLOW_LEASE_SECONDS / 3
    while followed:
        try:
            msg = inbox.get(timeout=max(0.0, renew_at - time.monotonic()))
        except queue.Empty:
            for stream, each in list(followed.items()):
                renew(stream, each)
            renew_at = time.monotonic() + FOLLOW_LEASE_SECONDS / 3
            continue
        chunk = LogChunk.decode(msg.payload, what="log chunk")
        one = followed.get(chunk.stream)
        if one is None or chunk.seq <= one.printed:
            continue  # a duplicate delivery, or a stream already ended
        text = chunk.text
        if prefix:
            head = f"[pod/{one.name}/{one.container}] "
            text = "".join(head + line for line in text.splitlines(keepends=True))
        ctx.out.write(text)
        ctx.out.flush()
        one.printed = chunk.seq
        if chunk.end:
            ctx.err.write(f"logs -f of {one.name} ended: {chunk.reason}\n")
            del followed[chunk.stream]
        elif one.printed - one.acked >= LOG_WINDOW_CHUNKS // 2:  # keep the node's window open
            renew(chunk.stream, one)
    return 0


def run(ctx: Context) -> int:
    args = ctx.args
    if args.follow and args.previous:
        raise ValidationError("only one of -f/--follow or -p/--previous may be used")
    if args.since and args.since_time:
        raise ValidationError("at most one of --since or --since-time may be specified")
    if args.since_time:
        try:
            _time(args.since_time)
        except ValueError:
            raise ValidationError(f"--since-time: {args.since_time!r} is not an RFC 3339 time") from None
    # kubectl's --tail=-1 means "all lines"; the wire only knows "absent" for that. A selector defaults to 10.
    tail = args.tail if args.tail is not None else (SELECTOR_TAIL if args.selector else -1)
    wire_tail = tail if tail >= 0 else None
    if args.selector:
        if args.pod:
            raise ValidationError("only one of a pod name or -l/--selector may be given")
        parse_selector(args.selector)
        pods = ctx.client().query(POD, ctx.namespace, args.selector)
        if not pods:
            ctx.err.write(f"No resources found in {ctx.namespace} namespace.\n")
        if args.follow:
            if len(pods) > MAX_FOLLOWS:  # kubectl's --max-log-requests, 5 by default
                raise ValidationError(
                    f"you are attempting to follow {len(pods)} log streams, exceeding the maximum allowed of "
                    f"{MAX_FOLLOWS}"
                )
            targets = [
                (
                    str(section(p, "metadata").get("name", "")),
                    args.container or _default_container(ctx, p, announce=False),
                )
                for p in pods
            ]
            return follow(ctx, targets, wire_tail, prefix=True)
        for pod in pods:
            container = args.container or _default_container(ctx, pod, announce=False)
            ctx.out.write(_one(ctx, pod, container, wire_tail, prefix=True))
        return 0
    if not args.pod:
        raise ValidationError("logs: expected one pod name (POD or pod/POD), or -l SELECTOR")
    res, names = split_args([args.pod] if "/" in args.pod else ["pod", args.pod])
    if res != POD or len(names) != 1:
        raise ValidationError("logs: expected one pod name (POD or pod/POD)")
    # The pod is fetched only when needed: to default the container, or for --previous's times.
    pod = _pod(ctx, names[0]) if args.previous or not args.container else {"metadata": {"name": names[0]}}
    container = args.container or _default_container(ctx, pod)
    if args.follow:
        return follow(ctx, [(names[0], container)], wire_tail, prefix=args.prefix)
    ctx.out.write(_one(ctx, pod, container, wire_tail, prefix=args.prefix))
    return 0
