"""`ekctl label|annotate TYPE NAME... KEY=VALUE... KEY-... [--overwrite]`: one request per object."""

from __future__ import annotations

from edgekube.cli.batch import run_each, select
from edgekube.cli.context import Context
from edgekube.cli.kinds import CONTROLLERS, NODE, POD, STORAGE, SVC, require, split_args
from edgekube.cli.labelspec import is_change, parse_changes
from edgekube.model.errors import ConflictError, EdgekubeError, ValidationError
from edgekube.model.wire import Verb


def _overwrite_hint(exc: EdgekubeError) -> str:
    """The master refuses to change an existing value without --overwrite; say how to ask for it."""
    refused = isinstance(exc, ConflictError) or "--overwrite is false" in str(exc)
    return "add --overwrite to replace existing values" if refused else ""


def _run(ctx: Context, verb: Verb) -> int:
    annotations = verb is Verb.ANNOTATE
    noun = "annotation" if annotations else "label"
    resource_args = [a for a in ctx.args.args if not is_change(a)]
    change_args = [a for a in ctx.args.args if is_change(a)]
    res, names = split_args(resource_args)
    require(res, (POD, NODE, *CONTROLLERS, *STORAGE, SVC), verb.value)
    if not change_args:
        raise ValidationError(
            f"at least one {noun} update is required", hint=f"e.g. `ekctl {verb.value} {res.singular} NAME key=value`"
        )
    changes = parse_changes(change_args, annotations=annotations)
    names = select(ctx, res, names, verb=verb.value, all_=ctx.args.all)
    removing_only = all(value is None for value in changes.values()) and not ctx.args.overwrite
    done = "annotated" if annotations else ("unlabeled" if removing_only else "labeled")
    overwrite = bool(ctx.args.overwrite)

    def one(name: str) -> str:
        edited = ctx.client().relabel(verb, res, ctx.namespace, name, changes, overwrite=overwrite)
        # kubectl says `not labeled` when nothing changed, but always `annotated`.
        return f"{res.qualified}/{name} {'not labeled' if edited.unchanged and not annotations else done}"

    return run_each(ctx, res, names, one, hint=None if overwrite else _overwrite_hint)


def run_label(ctx: Context) -> int:
    return _run(ctx, Verb.LABEL)


def run_annotate(ctx: Context) -> int:
    return _run(ctx, Verb.ANNOTATE)
