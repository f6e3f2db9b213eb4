"""`ekctl exec POD [-c CONTAINER] [--exec-timeout D] -- COMMAND [ARG...]`: run a command in a container, on its node.

The master forwards the request to the pod's node, whose agent runs it through Podman's exec API and answers with
the output (stdout and stderr together, at most 256 KiB) and the exit code, which becomes ekctl's exit status as
with kubectl. Interactive sessions (-i, -t) need a stream both ways and are not supported yet.
"""

from __future__ import annotations

from edgekube.cli.cmd_logs import _default_container, _pod
from edgekube.cli.context import Context
from edgekube.cli.kinds import POD, split_args
from edgekube.model.errors import ValidationError


def run(ctx: Context) -> int:
    args = ctx.args
    if args.stdin or args.tty:
        raise ValidationError(
            "exec: -i/--stdin and -t/--tty are not supported yet: edgekube runs the command and returns its output",
            hint="leave out -it, e.g. ekctl exec POD -- ls /",
        )
    command = list(args.exec_command)
    if not command:
        raise ValidationError("you must specify at least one command for the container", hint="ekctl exec POD -- CMD")
    res, names = split_args([args.pod] if "/" in args.pod else ["pod", args.pod])
    if res != POD or len(names) != 1:
        raise ValidationError("exec: expected one pod name (POD or pod/POD)")
    container = args.container or _default_container(ctx, _pod(ctx, names[0]))
    code, output = ctx.client().exec(ctx.namespace, names[0], container, command, args.exec_timeout)
    ctx.out.write(output)
    ctx.out.flush()
    return code
