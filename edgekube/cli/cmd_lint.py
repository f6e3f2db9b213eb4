"""`ekctl lint [FILE|DIR...] [--cluster] [-o json]`: every validation problem, then the label rules' findings.

Files are validated offline (model.manifest, one line per problem); then every decoded object of every file, and
with --cluster the live Pods, controllers, Services and Nodes (a file's object replaces the live one of that kind,
namespace and name), go through the label rules (model.lint). Exit status 1 on any problem or finding.
"""

from __future__ import annotations

import json
from typing import Any

from edgekube.cli.context import Context
from edgekube.cli.kinds import NODE, POD, RC, RS, SVC
from edgekube.cli.manifests import LintReport, lint
from edgekube.model.errors import ValidationError
from edgekube.model.lint import Finding, Item, document_marks
from edgekube.model.lint import lint as lint_labels
from edgekube.model.types import Obj


def _file_items(report: LintReport) -> list[Item]:
    items: list[Item] = []
    for source, documents in report.decoded:
        marks = document_marks(source.text)
        aligned = marks if marks is not None and len(marks) == len(documents) else None
        for i, doc in enumerate(documents):
            if isinstance(doc, dict):
                items.append(Item(doc, source.name, aligned[i] if aligned is not None else None))
    return items


def _key(obj: Obj) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind") or ""), str(meta.get("namespace") or "default"), str(meta.get("name") or ""))


def _cluster(ctx: Context, files: list[Item]) -> tuple[list[Item], list[Obj]]:
    client = ctx.client()
    given = {_key(dict(i.obj)) for i in files}
    live = [Item(o) for res in (SVC, RC, RS, POD) for o in client.query(res, None) if _key(o) not in given]
    return [*files, *live], client.query(NODE, None)


def run(ctx: Context) -> int:
    args = ctx.args
    if not args.paths and not args.cluster:
        raise ValidationError("lint: give manifest files or directories (FILE|DIR|-), or --cluster")
    report = lint(args.paths, ctx.stdin()) if args.paths else LintReport(findings=[])
    items = _file_items(report)
    nodes: list[Obj] | None = None
    if args.cluster:
        items, nodes = _cluster(ctx, items)
    findings = lint_labels(items, nodes)
    if args.output == "json":
        ctx.out.write(json.dumps(_json(report, findings), indent=2) + "\n")
    else:
        for line in report.findings:
            ctx.out.write(line + "\n")
        for finding in findings:
            ctx.out.write(finding.text() + "\n")
    if report.findings or findings:
        if args.output != "json":
            ctx.err.write(_summary(report, findings))
        return 1
    if args.output != "json":
        checked = f"{report.documents} document(s)" if args.paths else "the cluster"
        ctx.out.write(f"{checked} OK\n" if not args.cluster or not args.paths else f"{checked} and the cluster OK\n")
    return 0


def _summary(report: LintReport, findings: list[Finding]) -> str:
    parts = []
    if report.findings:
        parts.append(f"{len(report.findings)} problem(s) in {report.bad_files} of {report.files} file(s)")
    if findings:
        parts.append(f"{len(findings)} label finding(s)")
    return f"error: {'; '.join(parts)}\n"


def _json(report: LintReport, findings: list[Finding]) -> dict[str, Any]:
    return {
        "problems": report.findings,
        "findings": [f.to_dict() for f in findings],
        "documents": report.documents,
        "files": report.files,
    }
