"""`ekctl delete TYPE NAME...`, `delete TYPE -l SELECTOR`, `delete -f FILE` [--cascade]: prints `pod "x" deleted`."""

from __future__ import annotations

from edgekube.cli.batch import select
from edgekube.cli.client import Cascade
from edgekube.cli.context import Context
from edgekube.cli.errors import not_found, report
from edgekube.cli.kinds import Resource, for_kind, split_multi
from edgekube.cli.manifests import load_sources
from edgekube.cli.status import section
from edgekube.model.errors import NotFoundError, ValidationError
from edgekube.model.manifest import decode_documents

#: kubectl's --cascade values; true/false are its older spelling. Foreground deletion is not supported.
_CASCADE: dict[str, Cascade] = {"background": "background", "true": "background", "orphan": "orphan", "false": "orphan"}


def cascade(value: str | None) -> Cascade:
    found = _CASCADE.get((value or "background").lower())
    if found is None:
        raise ValidationError(
            f'invalid --cascade value "{value}": supported values: background, orphan',
            hint="--cascade=orphan (or false) keeps a controller's pods; background (the default) deletes them",
        )
    return found


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
                if not obj["metadata"]["name"]:  # only a generateName: nothing names the object to delete
                    raise ValidationError(f"{source.name}: resource name may not be empty")
                targets.append((res, namespace, str(obj["metadata"]["name"])))
        return targets
    targets = []
    for res, names in split_multi(ctx.resource_args):
        targets += [(res, ctx.namespace, name) for name in select(ctx, res, names, verb="delete")]
    return targets


def run(ctx: Context) -> int:
    failed = 0
    mode = cascade(ctx.args.cascade)
    for res, namespace, name in _targets(ctx):
        try:
            ctx.client().delete(res, namespace, name, mode)
        except NotFoundError:
            if not ctx.args.ignore_not_found:
                report(ctx.err, not_found(res, name, namespace))
                failed += 1
            continue
        ctx.out.write(f'{res.qualified} "{name}" deleted\n')
    return 1 if failed else 0
