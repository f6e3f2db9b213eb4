"""`ekctl logs POD [-c CONTAINER] [--tail N]`: the master forwards the request to the pod's node agent."""

from __future__ import annotations

from edgekube.cli.context import Context
from edgekube.cli.errors import not_found
from edgekube.cli.kinds import POD, split_args
from edgekube.cli.status import items, section
from edgekube.model.errors import NotFoundError, ValidationError


def _default_container(ctx: Context, name: str) -> str | None:
    """Pick the first container as kubectl does when -c is absent, announcing it when there are several."""
    try:
        pod = ctx.client().get(POD, ctx.namespace, name)
    except NotFoundError:
        raise not_found(POD, name, ctx.namespace) from None
    spec = section(pod, "spec")
    containers = [str(c.get("name")) for c in items(spec, "containers")]
    inits = [f"{c.get('name')} (init)" for c in items(spec, "initContainers")]  # kubectl's words
    if len(containers) + len(inits) > 1:
        ctx.err.write(f'Defaulted container "{containers[0]}" out of: {", ".join([*containers, *inits])}\n')
    return containers[0] if containers else None


def run(ctx: Context) -> int:
    res, names = split_args([ctx.args.pod] if "/" in ctx.args.pod else ["pod", ctx.args.pod])
    if res != POD or len(names) != 1:
        raise ValidationError("logs: expected one pod name (POD or pod/POD)")
    name = names[0]
    container = ctx.args.container or _default_container(ctx, name)
    # kubectl's --tail=-1 means "all lines"; the wire only knows "absent" for that.
    tail = ctx.args.tail if ctx.args.tail is not None and ctx.args.tail >= 0 else None
    text = ctx.client().logs(ctx.namespace, name, container, tail)
    ctx.out.write(text if not text or text.endswith("\n") else text + "\n")
    return 0
