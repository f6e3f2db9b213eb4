"""One request per object, kubectl-style: names given, by -l or --all; a line per success; go on after errors."""

from __future__ import annotations

from collections.abc import Callable

from edgekube.cli.cmd_get import check_selector
from edgekube.cli.context import Context
from edgekube.cli.errors import not_found, report
from edgekube.cli.kinds import Resource
from edgekube.cli.status import section
from edgekube.model.errors import BusError, EdgekubeError, NotFoundError, ValidationError


def select(ctx: Context, res: Resource, names: list[str], *, verb: str, all_: bool = False) -> list[str]:
    """The names given, or those -l SELECTOR (or --all) lists; an empty selection says so on stderr."""
    selector = getattr(ctx.args, "selector", None)
    if names and (selector or all_):
        raise ValidationError(
            "name cannot be provided when a selector is specified" if selector else "name cannot be provided with --all"
        )
    if not names and not selector and not all_:
        raise ValidationError(
            "resource(s) were provided, but no name was specified",
            hint=f"name them (`ekctl {verb} {res.singular} NAME`) or select with -l",
        )
    if names:
        return names
    namespace = ctx.namespace if res.namespaced else None
    objects = ctx.client().query(res, namespace, check_selector(selector))
    if not objects:
        ctx.err.write("No resources found\n")
    return [str(section(o, "metadata").get("name")) for o in objects]


Action = Callable[[str], str]
Hint = Callable[[EdgekubeError], str]


def run_each(ctx: Context, res: Resource, names: list[str], action: Action, hint: Hint | None = None) -> int:
    """Call `action(name)` for each name and print the line it returns; 1 if any failed.

    A broker or master that stopped answering ends the loop: the remaining requests would only time out too.
    `hint` may supply a hint for a master's error that came without one.
    """
    failed = 0
    for name in names:
        try:
            line = action(name)
        except BusError:
            raise
        except NotFoundError:
            report(ctx.err, not_found(res, name, ctx.namespace))
            failed += 1
            continue
        except EdgekubeError as exc:
            if hint is not None and not exc.hint:
                exc.hint = hint(exc)
            report(ctx.err, exc)
            failed += 1
            continue
        ctx.out.write(line + "\n")
        ctx.out.flush()
    return 1 if failed else 0
