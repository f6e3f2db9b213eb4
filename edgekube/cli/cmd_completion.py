"""`ekctl completion bash|zsh`: print the shell completion script generated from ekctl's parser."""

from __future__ import annotations

from edgekube.cli.completion import script
from edgekube.cli.context import Context
from edgekube.cli.parser import build_parser


def run(ctx: Context) -> int:
    ctx.out.write(script(ctx.args.shell, build_parser()))
    return 0
