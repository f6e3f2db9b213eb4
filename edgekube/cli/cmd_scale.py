"""`ekctl scale rc|rs|deploy NAME... --replicas=N`: set spec.replicas; prints `replicationcontroller/web scaled`."""

from __future__ import annotations

from edgekube.cli.batch import run_each, select
from edgekube.cli.context import Context
from edgekube.cli.kinds import CONTROLLERS, DEPLOY, require, split_args


def run(ctx: Context) -> int:
    res, names = split_args(ctx.resource_args)
    require(res, (*CONTROLLERS, DEPLOY), "scale")
    names = select(ctx, res, names, verb="scale", all_=ctx.args.all)
    replicas = int(ctx.args.replicas)

    def one(name: str) -> str:
        ctx.client().scale(res, ctx.namespace, name, replicas)
        return f"{res.qualified}/{name} scaled"

    return run_each(ctx, res, names, one)
