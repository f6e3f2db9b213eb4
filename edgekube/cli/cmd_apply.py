"""`ekctl apply -f FILE|DIR|- [--wait]`: validate every file locally, then one apply request per file."""

from __future__ import annotations

import json

from edgekube.cli import wait
from edgekube.cli.context import Context
from edgekube.cli.errors import report
from edgekube.cli.kinds import for_kind
from edgekube.cli.manifests import STDIN, Source, load_sources
from edgekube.model.base import K8sModel
from edgekube.model.errors import BusError, EdgekubeError, ValidationError
from edgekube.model.manifest import CLUSTER_SCOPED, decode_documents
from edgekube.model.wire import MAX_PAYLOAD_BYTES, ApiRequest, Outcome, Verb

#: The wire says "updated"; kubectl users read "configured".
ACTIONS = {"created": "created", "updated": "configured", "unchanged": "unchanged", "deleted": "deleted"}


def _with_namespace(source: Source, namespace: str) -> str:
    """Fill an explicit -n into objects that name no namespace, refusing ones that name another (kubectl)."""
    documents = decode_documents(source.data, source=source.name)
    changed = False
    for i, doc in enumerate(documents):
        if not isinstance(doc, dict) or doc.get("kind") in CLUSTER_SCOPED:
            continue
        meta = doc.setdefault("metadata", {})
        given = meta.get("namespace")
        if not given:
            meta["namespace"] = namespace
            changed = True
        elif given != namespace:
            raise ValidationError(
                f'{source.name}[{i}]: the namespace from the provided object "{given}" does not match '
                f'the namespace "{namespace}"',
                hint=f"pass --namespace={given}, or leave metadata.namespace out of the manifest",
            )
    if not changed:
        return source.text
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": documents})


def _payload(ctx: Context, source: Source) -> str:
    manifest = _with_namespace(source, ctx.namespace) if ctx.namespace_given else source.text
    size = len(ApiRequest(verb=Verb.APPLY, manifest=manifest).encode())
    if size > MAX_PAYLOAD_BYTES:
        name = "standard input" if source.name == STDIN else source.name
        raise ValidationError(
            f"{name}: the apply request would be {size} bytes, over the {MAX_PAYLOAD_BYTES}-byte message limit",
            hint="split the manifest into several files",
        )
    return manifest


def _refuse_generate_name(obj: K8sModel) -> None:
    """As kubectl apply: an object named only by metadata.generateName cannot be applied, only created."""
    meta = getattr(obj, "metadata", None)
    if meta is not None and not meta.name and meta.generate_name:
        raise ValidationError(
            f"from {meta.generate_name}: cannot use generate name with apply", hint="use `ekctl create -f` for it"
        )


def run(ctx: Context) -> int:
    # Everything is read and validated before the first request, so a bad file never half-applies a set.
    sources = load_sources(ctx.args.filename, ctx.stdin())
    for _source, documents in sources:
        for doc in documents:
            _refuse_generate_name(doc.obj)
    payloads = [(source, _payload(ctx, source)) for source, _docs in sources]
    failed = 0
    applied: list[Outcome] = []
    for source, manifest in payloads:
        try:
            outcomes = ctx.client().apply(manifest)
        except BusError:
            raise  # the broker or master is gone: the remaining files would only time out too
        except EdgekubeError as exc:
            report(ctx.err, EdgekubeError(f"{source.name}: {exc}", hint=exc.hint))
            failed += 1
            continue
        for outcome in outcomes:
            ctx.out.write(f"{for_kind(outcome.kind).qualified}/{outcome.name} {ACTIONS[outcome.action]}\n")
        ctx.out.flush()
        applied.extend(outcomes)
    if failed:
        return 1
    if ctx.args.wait:
        pods = [(o.namespace, o.name) for o in applied if o.kind == "Pod"]
        wait.until_running(ctx.client(), pods, timeout=ctx.args.wait_timeout, err=ctx.err)
    return 0
