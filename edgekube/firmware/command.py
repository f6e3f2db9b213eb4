"""`edgekube firmware apply --boot DIR [--dry-run]`: the argparse wiring of firmware.apply; edgekube.main adds it."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgekube.firmware.apply import apply


def cmd_apply(args: argparse.Namespace) -> int:
    return apply(Path(args.boot), dry_run=args.dry_run, fragments=Path(args.fragments) if args.fragments else None)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `firmware apply` to the `edgekube` command."""
    fw = sub.add_parser("firmware", help="Raspberry Pi boot partition settings (config.txt, cmdline.txt)")
    actions = fw.add_subparsers(dest="firmware_command", required=True)
    a = actions.add_parser(
        "apply",
        help="merge edgekube's settings into config.txt and cmdline.txt (idempotent, backs up the originals)",
        description="Exit status: 0 done (or nothing to do), 1 error; with --dry-run 0 nothing would change, "
        "2 something would (the diff is printed).",
    )
    a.add_argument("--boot", default="/boot/firmware", help="the boot partition (default: /boot/firmware)")
    a.add_argument("--dry-run", action="store_true", help="print the diff, change nothing")
    a.add_argument("--fragments", help="a directory with your own config.txt and cmdline.txt fragments")
    a.set_defaults(func=cmd_apply)
