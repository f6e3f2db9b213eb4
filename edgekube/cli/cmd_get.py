"""`ekctl get TYPE [NAME...]`: fetch by name or list (-l, -A), print as a table, names, JSON or YAML."""

from __future__ import annotations

from edgekube.cli import output
from edgekube.cli.context import Context
from edgekube.cli.errors import not_found, report
from edgekube.cli.kinds import NODE, Resource, split_args
from edgekube.cli.status import Obj
from edgekube.model.errors import NotFoundError, ValidationError
from edgekube.model.labels import parse_selector


def check_selector(selector: str | None) -> str | None:
    """Parse -l locally so a typo is reported with its position before anything is sent."""
    if selector:
        parse_selector(selector)
    return selector or None


def fetch(ctx: Context, res: Resource, names: list[str]) -> tuple[list[Obj], int]:
    """Get the named objects in order; each missing one is reported on stderr and counted, kubectl-style."""
    found, missing = [], 0
    for name in names:
        try:
            found.append(ctx.client().get(res, ctx.namespace, name))
        except NotFoundError:
            report(ctx.err, not_found(res, name, ctx.namespace))
            missing += 1
    return found, missing


def list_objects(ctx: Context, res: Resource, selector: str | None, all_namespaces: bool) -> list[Obj]:
    namespace = None if all_namespaces or res == NODE else ctx.namespace
    return ctx.client().query(res, namespace, check_selector(selector))


def no_resources(ctx: Context, res: Resource, all_namespaces: bool) -> None:
    where = "" if all_namespaces or not res.namespaced else f" in {ctx.namespace} namespace"
    ctx.err.write(f"No resources found{where}.\n")


def run(ctx: Context) -> int:
    args = ctx.args
    res, names = split_args(ctx.resource_args)
    if names and args.selector:
        raise ValidationError("name cannot be provided when a selector is specified")
    if names:
        objects, missing = fetch(ctx, res, names)
    else:
        objects, missing = list_objects(ctx, res, args.selector, args.all_namespaces), 0
    single = len(names) == 1
    text = output.render(
        res,
        objects,
        args.output,
        single=single,
        all_namespaces=args.all_namespaces and not names,
        headers=not args.no_headers,
    )
    if not objects and not names and args.output not in ("json", "yaml"):
        no_resources(ctx, res, args.all_namespaces)
    if (objects or args.output in ("json", "yaml")) and not (single and missing):
        ctx.out.write(text)
    return 1 if missing else 0
