"""`ekctl cordon|uncordon|drain NODE...` (schedulable or not, evict their pods) and `ekctl node identify NODE`."""

from __future__ import annotations

from edgekube.cli import pending
from edgekube.cli.batch import run_each, select
from edgekube.cli.context import Context
from edgekube.cli.errors import not_found
from edgekube.cli.kinds import NODE, require, split_args
from edgekube.model.errors import NotFoundError, ValidationError

#: The longest identify a node accepts (the wire's limit, seconds).
MAX_IDENTIFY = 3600.0
#: drain evicts every pod before answering, so its answer may take longer than a plain request's.
DRAIN_MIN_WAIT = 60.0


def _names(ctx: Context, verb: str) -> list[str]:
    """`NODE...`, `node/NODE...`, or the nodes -l SELECTOR lists."""
    given = [str(n) for n in ctx.args.names]
    names = given
    if any("/" in n for n in given):
        res, names = split_args(given)
        require(res, (NODE,), verb)
    if not names and not ctx.args.selector:
        raise ValidationError(f"{verb}: no node name was given", hint=f"usage: ekctl {verb} NODE... or -l SELECTOR")
    return select(ctx, NODE, names, verb=verb)


def _mark(ctx: Context, *, schedulable: bool) -> int:
    verb = "uncordon" if schedulable else "cordon"

    def one(name: str) -> str:
        edited = ctx.client().cordon(name, schedulable=schedulable)
        return f"node/{name} {'already ' if edited.unchanged else ''}{verb}ed"

    return run_each(ctx, NODE, _names(ctx, verb), one)


def run_cordon(ctx: Context) -> int:
    return _mark(ctx, schedulable=False)


def run_uncordon(ctx: Context) -> int:
    return _mark(ctx, schedulable=True)


def run_drain(ctx: Context) -> int:
    wait = max(ctx.timeout, DRAIN_MIN_WAIT)

    def one(name: str) -> str:
        client = ctx.client()
        outcomes = pending.await_with_progress(lambda: client.drain(name, wait), ctx.err, f"draining node/{name}")
        lines = [f"node/{name} cordoned"]
        lines += [f"evicting pod {o.namespace}/{o.name}" for o in outcomes if o.kind == "Pod"]
        return "\n".join([*lines, f"node/{name} drained"])

    return run_each(ctx, NODE, _names(ctx, "drain"), one)


def run_node(ctx: Context) -> int:
    """`ekctl node identify NODE [--for 30s] [--cancel]`: the node blinks its LEDs (docs/leds.md)."""
    given = str(ctx.args.node)
    res, names = split_args([given] if "/" in given else ["node", given])
    require(res, (NODE,), "node identify")
    if len(names) != 1:
        raise ValidationError("node identify: expected one node name (NODE or node/NODE)")
    name = names[0]
    seconds = 0.0 if ctx.args.cancel else float(ctx.args.duration)
    if not ctx.args.cancel and not 0 < seconds <= MAX_IDENTIFY:
        raise ValidationError(f"--for: {seconds:g}s: must be more than 0s and at most {MAX_IDENTIFY:g}s (1h)")
    try:
        leds = ctx.client().identify(name, seconds)
    except NotFoundError:
        raise not_found(NODE, name, ctx.namespace) from None
    if ctx.args.cancel:
        ctx.out.write(f"node/{name} identify cancelled; its LEDs show {leds.get('pattern', 'nothing')}\n")
    else:
        until = leds.get("identifyUntil", "")
        ctx.out.write(
            f"node/{name} identifying: its LEDs blink the Identify pattern for {seconds:g}s (until {until})\n"
        )
    return 0
