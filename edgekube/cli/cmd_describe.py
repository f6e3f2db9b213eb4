"""`ekctl describe pod|node [NAME...]`: kubectl's human-readable detail view of each object."""

from __future__ import annotations

from edgekube.cli.cmd_get import fetch, list_objects, no_resources
from edgekube.cli.context import Context
from edgekube.cli.describe_node import describe_node
from edgekube.cli.describe_pod import describe_pod
from edgekube.cli.kinds import NODE, POD, split_args
from edgekube.cli.status import Obj, section
from edgekube.model.errors import ValidationError


def run(ctx: Context) -> int:
    res, names = split_args(ctx.resource_args)
    if names and ctx.args.selector:
        raise ValidationError("name cannot be provided when a selector is specified")
    if names:
        objects, missing = fetch(ctx, res, names)
    else:
        objects, missing = list_objects(ctx, res, ctx.args.selector, all_namespaces=False), 0
        if not objects:
            no_resources(ctx, res, all_namespaces=False)
    pods: list[Obj] = []
    if res == NODE and objects:
        # The API has no field selectors: fetch every pod once and group them by spec.nodeName here.
        pods = ctx.client().query(POD, None)
    texts = []
    for obj in objects:
        if res == NODE:
            name = section(obj, "metadata").get("name")
            texts.append(describe_node(obj, [p for p in pods if section(p, "spec").get("nodeName") == name]))
        else:
            texts.append(describe_pod(obj))
    ctx.out.write("\n\n".join(texts))
    return 1 if missing else 0
