"""`ekctl get TYPE[,TYPE...] [NAME...]`: fetch by name or list (-l, -A), print as tables, names, JSON or YAML."""

from __future__ import annotations

from edgekube.cli import cmd_masters, columns, events, output
from edgekube.cli.context import Context
from edgekube.cli.errors import not_found, report
from edgekube.cli.kinds import EVENT, Resource, split_multi
from edgekube.cli.wait import Progress
from edgekube.model.errors import NotFoundError, ValidationError
from edgekube.model.labels import parse_selector
from edgekube.model.types import Obj


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


def list_objects(
    ctx: Context, res: Resource, selector: str | None, all_namespaces: bool, annotations: str | None = None
) -> list[Obj]:
    namespace = None if all_namespaces or not res.namespaced else ctx.namespace
    shown = Progress(ctx.err)

    def listed(done: int, total: int) -> None:  # only lists longer than a page, only on a terminal
        if shown.tty:
            shown.show(f"listing {res.plural}:", f"{done} of {total}", "")

    found = ctx.client().query(
        res, namespace, check_selector(selector), progress=listed, annotation_selector=check_selector(annotations)
    )
    shown.clear()
    return events.by_time(found) if res == EVENT else found


def objects_of(
    ctx: Context,
    res: Resource,
    names: list[str],
    selector: str | None,
    all_namespaces: bool,
    *,
    annotations: str | None = None,
) -> tuple[list[Obj], int]:
    """The named objects (and how many were missing), or the listed ones when no name is given."""
    if names:
        return fetch(ctx, res, names)
    return list_objects(ctx, res, selector, all_namespaces, annotations), 0


def no_resources(ctx: Context, res: Resource | None, all_namespaces: bool) -> None:
    """Print kubectl's `No resources found in X namespace.`; `res` None stands for several kinds."""
    namespaced = res is None or res.namespaced
    where = "" if all_namespaces or not namespaced else f" in {ctx.namespace} namespace"
    ctx.err.write(f"No resources found{where}.\n")


def _generic(fmt: str | None) -> bool:
    """json, yaml, jsonpath: printed even when nothing was found (an empty List), with no `No resources found`."""
    return fmt in ("json", "yaml") or (fmt or "").startswith("jsonpath=")


def run(ctx: Context) -> int:
    if cmd_masters.wanted(ctx.resource_args):  # HA masters: their presences on the broker, not API objects
        return cmd_masters.run_get(ctx)
    args = ctx.args
    targets = split_multi(ctx.resource_args)
    named = any(names for _res, names in targets)
    annotations = getattr(args, "annotation_selector", None)
    if named and (args.selector or annotations):
        raise ValidationError("name cannot be provided when a selector is specified")
    check_selector(args.selector)
    check_selector(annotations)
    sort_by = getattr(args, "sort_by", None)
    if sort_by:
        columns.sort_by([], sort_by)  # a path that does not parse is refused before anything is sent
    if getattr(args, "watch", False) or getattr(args, "watch_only", False):
        from edgekube.cli import cmd_watch  # noqa: PLC0415 - only -w needs the stream

        return int(cmd_watch.run(ctx, targets))
    groups: list[output.Group] = []
    missing = 0
    for res, names in targets:
        objects, lost = objects_of(ctx, res, names, args.selector, args.all_namespaces, annotations=annotations)
        missing += lost
        groups.append((res, columns.sort_by(objects, sort_by) if sort_by else objects))
    single = len(targets) == 1 and len(targets[0][1]) == 1
    text = output.render_groups(
        groups,
        args.output,
        single=single,
        all_namespaces=args.all_namespaces and not named,
        headers=not args.no_headers,
        label_columns=columns.label_keys(getattr(args, "label_columns", None)),
        show_labels=getattr(args, "show_labels", False),
    )
    found = any(objects for _res, objects in groups)
    if not found and not named and not _generic(args.output):
        no_resources(ctx, targets[0][0] if len(targets) == 1 else None, args.all_namespaces)
    if (found or _generic(args.output)) and not (single and missing):
        ctx.out.write(text)
    return 1 if missing else 0
