"""How ekctl reports a failure: one `error:` line, an optional `hint:` line; kubectl's NotFound wording."""

from __future__ import annotations

from typing import TextIO

from edgekube.cli.kinds import Resource
from edgekube.model.errors import EdgekubeError, NotFoundError


def one_line(text: str) -> str:
    return " ".join(text.split())


def report(err: TextIO, exc: BaseException) -> None:
    err.write(f"error: {one_line(str(exc)) or type(exc).__name__}\n")
    hint = getattr(exc, "hint", "")
    if isinstance(exc, EdgekubeError) and hint:
        err.write(f"hint: {one_line(hint)}\n")


def not_found(res: Resource, name: str, namespace: str) -> NotFoundError:
    """Build kubectl's `pods "x" not found`, naming the namespace and how to see what does exist."""
    where = f' in namespace "{namespace}"' if res.namespaced else ""
    flag = f" -n {namespace}" if res.namespaced and namespace != "default" else ""
    return NotFoundError(
        f'{res.qualified_plural} "{name}" not found{where}', hint=f"list them with `ekctl get {res.plural}{flag}`"
    )
