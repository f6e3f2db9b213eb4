"""`ekctl delete TYPE NAME...`, `delete TYPE -l SELECTOR`, `delete -f FILE`: prints `pod "x" deleted`."""

from __future__ import annotations

from edgekube.cli.cmd_get import check_selector
from edgekube.cli.context import Context
from edgekube.cli.errors import not_found, report
from edgekube.cli.kinds import Resource, for_kind, split_args
from edgekube.cli.manifests import load_sources
from edgekube.cli.status import section
from edgekube.model.errors import NotFoundError, ValidationError
from edgekube.model.manifest import decode_documents


def _targets(ctx: Context) -> list[tuple[Resource, str, str]]:
    args = ctx.args
    if args.filename:
        if ctx.resource_args or args.selector:
            raise ValidationError("delete -f takes no resource type, names or selector")
        targets = []
        for source, documents in load_sources(args.filename, ctx.stdin()):
            # Validation defaulted every namespace to "default"; the raw text tells whether -n should apply.
            raw = decode_documents(source.data, source=source.name)
            for doc in documents:
                obj = doc.obj.to_dict()
                res = for_kind(obj["kind"])
                given = section(raw[doc.index], "metadata").get("namespace")  # validated: a mapping
                namespace = (given or ctx.namespace) if res.namespaced else ""
                targets.append((res, namespace, str(obj["metadata"]["name"])))
        return targets
    res, names = split_args(ctx.resource_args)
    if names and args.selector:
        raise ValidationError("name cannot be provided when a selector is specified")
    if args.selector:
        namespace = ctx.namespace if res.namespaced else None
        objects = ctx.client().query(res, namespace, check_selector(args.selector))
        names = [str(section(o, "metadata").get("name")) for o in objects]
        if not names:
            ctx.err.write("No resources found\n")
    elif not names:
        raise ValidationError(
            "resource(s) were provided, but no name was specified",
            hint=f"name them (`ekctl delete {res.singular} NAME`), select with -l, or use -f FILE",
        )
    return [(res, ctx.namespace, name) for name in names]


def run(ctx: Context) -> int:
    failed = 0
    for res, namespace, name in _targets(ctx):
        try:
            ctx.client().delete(res, namespace, name)
        except NotFoundError:
            if not ctx.args.ignore_not_found:
                report(ctx.err, not_found(res, name, namespace))
                failed += 1
            continue
        ctx.out.write(f'{res.singular} "{name}" deleted\n')
    return 1 if failed else 0
