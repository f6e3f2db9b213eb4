"""`ekctl explain KIND[.FIELD...] [--recursive]`: a kind's fields, types and descriptions from edgekube's models."""

from __future__ import annotations

from edgekube.cli.context import Context
from edgekube.cli.explain import explain
from edgekube.cli.kinds import resource
from edgekube.model.errors import ValidationError
from edgekube.model.manifest import KINDS


def run(ctx: Context) -> int:
    """Offline: the models ship with ekctl, so explain works with no cluster, as it documents this ekctl's schema."""
    kind_name, *path = ctx.args.field.split(".")
    res = resource(kind_name)
    for (version, kind), model in KINDS.items():
        if kind == res.kind:
            ctx.out.write(explain(kind, version, model, path, recursive=ctx.args.recursive))
            return 0
    raise ValidationError(f"explain: {res.plural} have no manifest model in edgekube (they are made by the master)")
