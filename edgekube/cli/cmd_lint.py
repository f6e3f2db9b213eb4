"""`ekctl lint FILE|DIR...`: offline validation listing every problem in every document, one line each."""

from __future__ import annotations

from edgekube.cli.context import Context
from edgekube.cli.manifests import lint


def run(ctx: Context) -> int:
    report = lint(ctx.args.paths, ctx.stdin())
    for line in report.findings:
        ctx.out.write(line + "\n")
    if report.findings:
        ctx.err.write(f"error: {len(report.findings)} problem(s) in {report.bad_files} of {report.files} file(s)\n")
        return 1
    ctx.out.write(f"{report.documents} document(s) OK\n")
    return 0
