"""`ekctl get masters` and `ekctl describe master [ID...]`: the HA masters as the broker holds them (docs/ha.md).

Read from each master's retained presence on `edgekube/v1/masters/<id>/online` (MasterPresence: role, term, what
it says of the standby's copy, its last journal sequence number, why a standby waits), not from the API: it
answers even while no master is active, which is when it is most wanted. Called by cmd_get and cmd_describe
(cli/masters.py is what BusSession keeps of the same presences, for its hints).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from edgekube.bus import topics
from edgekube.bus.protocol import Message, MessageBus
from edgekube.cli import config, output
from edgekube.cli.context import Context
from edgekube.cli.tabwriter import table
from edgekube.model.errors import NotFoundError
from edgekube.model.ha import MasterPresence, Replication, Role

#: The words `get`/`describe` take for them, as kubectl's resource names.
WORDS = ("masters", "master")
#: Retained messages arrive right after the subscription; this long without another one ends the wait.
QUIET = 0.3


def wanted(resource_args: list[str]) -> bool:
    return bool(resource_args) and resource_args[0] in WORDS


def _bus(ctx: Context) -> MessageBus:
    from edgekube.cli.client import paho_bus  # noqa: PLC0415 - paho loads only when a command talks

    tls = {key: getattr(ctx.args, key, None) for key in config.ENV_TLS}
    connection = config.resolve(
        ctx.args.mqtt_host, ctx.args.mqtt_port, os.environ, Path.cwd(), tls=tls,
        brokers=getattr(ctx.args, "broker", None),
    )  # fmt: skip
    return paho_bus(connection)


def presences(bus: MessageBus, timeout: float) -> dict[str, MasterPresence]:
    """Every master's retained presence: collected until QUIET seconds pass without one (at most `timeout`)."""
    found: dict[str, MasterPresence] = {}
    arrived = threading.Event()

    def on_presence(msg: Message) -> None:
        if msg.payload:
            presence = MasterPresence.decode(msg.payload, what="master presence")
            found[presence.master_id] = presence
        arrived.set()

    bus.subscribe(topics.ALL_MASTERS_ONLINE, on_presence)
    bus.start(wait=timeout)
    deadline = time.monotonic() + timeout
    while arrived.wait(min(QUIET, max(0.0, deadline - time.monotonic()))) and time.monotonic() < deadline:
        arrived.clear()
    return dict(sorted(found.items()))


def _presences(ctx: Context) -> dict[str, MasterPresence]:
    """The masters that announce themselves on the context's broker, on a bus of their own closed after."""
    bus = _bus(ctx)
    try:
        return presences(bus, ctx.timeout)
    finally:
        bus.close()


def _state(p: MasterPresence) -> str:
    if not p.online:
        return "handed over" if p.note == "handover" else "offline"
    return p.replication or "-"


def run_get(ctx: Context) -> int:
    names = ctx.resource_args[1:]
    found = _presences(ctx)
    shown = [p for name, p in found.items() if not names or name in names]
    for name in names:
        if name not in found:
            ctx.err.write(f'Error from server (NotFound): masters "{name}" not found\n')
    fmt = getattr(ctx.args, "output", None)
    if fmt in ("json", "yaml"):
        data = output.as_list([p.model_dump(by_alias=True, mode="json") for p in shown])
        ctx.out.write(output.to_json(data) if fmt == "json" else output.to_yaml(data))
        return 0 if len(shown) == len(names) or not names else 1
    if not shown:
        ctx.err.write("No masters found (no HA master has announced itself on this broker).\n")
        return 0 if not names else 1
    rows = [
        [p.master_id, p.role.value if p.role else "-", "yes" if p.online else "no", str(p.term), _state(p),
         p.peer or "-", str(p.seq)]
        for p in shown
    ]  # fmt: skip
    header = ["NAME", "ROLE", "ONLINE", "TERM", "REPLICATION", "PEER", "SEQ"]
    ctx.out.write(table(header, rows, headers=not getattr(ctx.args, "no_headers", False)))
    return 0 if len(shown) == len(names) or not names else 1


def describe(p: MasterPresence) -> str:
    """One master, kubectl describe's layout."""
    role = p.role.value if p.role else "-"
    lines = [
        f"Name:         {p.master_id}",
        f"Role:         {role}",
        f"Online:       {'yes' if p.online else 'no'}",
        f"Term:         {p.term}",
        f"Boot ID:      {p.boot_id or '-'}",
        f"Journal seq:  {p.seq}",
    ]
    if p.role is Role.ACTIVE:
        meaning = {
            Replication.REPLICATED.value: "every acknowledged write is on the standby's flash too",
            Replication.UNREPLICATED.value: "writes are acknowledged on this master's flash alone",
            Replication.CATCHING_UP.value: "the standby is loading a snapshot; writes are acknowledged unreplicated",
        }.get(p.replication, "")
        lines.append(f"Replication:  {p.replication or '-'}" + (f" ({meaning})" if meaning else ""))
        lines.append(f"Standby:      {p.peer or '-'}")
    else:
        lines.append(f"Copy:         {p.replication or '-'}" + (f" of {p.peer}" if p.peer else ""))
        lines.append(f"Following:    {p.peer or '-'}")
    if p.note:
        lines.append(f"Note:         {p.note}")
    return "\n".join(lines) + "\n"


def run_describe(ctx: Context) -> int:
    names = ctx.resource_args[1:]
    found = _presences(ctx)
    missing = [name for name in names if name not in found]
    shown = [p for name, p in found.items() if not names or name in names]
    ctx.out.write("\n".join(describe(p) for p in shown))
    if missing:
        raise NotFoundError(f'masters "{missing[0]}" not found', hint="`ekctl get masters` lists them")
    return 0
