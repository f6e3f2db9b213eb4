"""ekctl's entry point: parse arguments, run one command, and turn every failure into an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING

from edgekube.cli.context import Context
from edgekube.cli.errors import one_line, report
from edgekube.cli.parser import build_parser
from edgekube.model.errors import EdgekubeError

if TYPE_CHECKING:
    from edgekube.cli.client import Connector

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse like parse_args, but names after a flag (`label pod x --overwrite a=b`) join the positionals.

    argparse stops filling a list positional at the first flag; kubectl users put names and flags in any order.
    """
    words = sys.argv[1:] if argv is None else list(argv)
    after: list[str] | None = None
    if "--" in words:  # `exec POD -- CMD -x`: argparse's subcommands do not pass `--` through, so it is cut here
        at = words.index("--")
        words, after = words[:at], words[at + 1 :]
    args, extra = parser.parse_known_args(words)
    if after is not None:
        if not hasattr(args, "exec_command"):
            parser.error(f"unrecognized arguments: -- {' '.join(after)}")
        args.exec_command = [*args.exec_command, *after]
    trailing = getattr(args, "trailing", None)
    if extra and trailing and not any(e.startswith("-") for e in extra):
        setattr(args, trailing, [*getattr(args, trailing), *extra])
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _parse(argv: list[str] | None) -> argparse.Namespace | int:
    try:
        return parse(build_parser(), argv)
    except SystemExit as exc:  # argparse exits for --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except Exception as exc:  # a bug in the parser definition still must not print a traceback
        _unexpected(exc, debug="--debug" in (sys.argv[1:] if argv is None else argv))
        return EXIT_ERROR


def _unexpected(exc: Exception, *, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    sys.stderr.write(f"error: unexpected {type(exc).__name__}: {one_line(str(exc))}\n")
    if not debug:
        sys.stderr.write("hint: rerun with --debug for a traceback\n")


def _silence_broken_pipe() -> None:
    """`ekctl get pods | head`: the reader left; stop writing without a second error at interpreter exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def run(argv: list[str] | None = None, *, connector: Connector | None = None) -> int:
    """Run ekctl like main() but with a replaceable connection factory, for tests that fake the master."""
    args = _parse(argv)
    if isinstance(args, int):
        return args
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ctx = Context(args, connector=connector)  # None: the MQTT connection, imported when first used
    try:
        return int(args.run(ctx))
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_broken_pipe()
        return EXIT_ERROR
    except EdgekubeError as exc:
        if args.debug:
            traceback.print_exc()
        report(sys.stderr, exc)
        return EXIT_ERROR
    except Exception as exc:
        _unexpected(exc, debug=args.debug)
        return EXIT_ERROR
    finally:
        try:
            ctx.close()
        except Exception:  # closing must never mask the command's own result
            logging.getLogger(__name__).debug("closing the connection failed", exc_info=True)


def main(argv: list[str] | None = None) -> int:
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
