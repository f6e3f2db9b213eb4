"""Applies the boot settings to a boot partition: reads, diffs, backs up once and writes atomically; for command.

Exit status: 0 done (stdout ends `changed: FILES` or `unchanged`), 1 an error (nothing written), and with
--dry-run 0 nothing would change, 2 something would (the diff is printed), like `git diff --exit-code`.
"""

from __future__ import annotations

import difflib
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edgekube.firmware.bootfiles import CmdlineFragment, merge_cmdline, merge_config, outside_settings
from edgekube.model.errors import ValidationError

BACKUP_SUFFIX = ".edgekube-bak"
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_WOULD_CHANGE = 2


def packaged_fragment(name: str) -> str:
    """A settings file shipped with edgekube (edgekube/firmware/config.txt, cmdline.txt)."""
    return resources.files("edgekube.firmware").joinpath(name).read_text(encoding="utf-8")


@dataclass
class Plan:
    """What applying would write: new contents per file (only files that change), and notes for the operator."""

    changes: dict[Path, tuple[str, str]] = field(default_factory=dict)  # path -> (old, new)
    notes: list[str] = field(default_factory=list)

    def diff(self) -> str:
        out: list[str] = []
        for path, (old, new) in self.changes.items():
            out += difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True), f"{path}", f"{path} (edgekube)"
            )
        return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(
            f"{path}: no {what}; is {path.parent} a Raspberry Pi boot partition? (bookworm: /boot/firmware)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path}: cannot read it: {exc}") from None


def plan(boot: Path, config_fragment: str, cmdline_fragment: str) -> Plan:
    """What the boot partition at `boot` needs (pure but for reading its two files)."""
    if not boot.is_dir():
        raise ValidationError(f"--boot {boot}: no such directory (mount the boot partition; bookworm: /boot/firmware)")
    result = Plan()
    config_path, cmdline_path = boot / "config.txt", boot / "cmdline.txt"
    config = _read(config_path, "config.txt")
    cmdline = _read(cmdline_path, "cmdline.txt")
    merged_config = merge_config(config, config_fragment)
    merged_cmdline = merge_cmdline(cmdline, CmdlineFragment.parse(cmdline_fragment))
    result.notes = outside_settings(config, config_fragment)
    for path, old, new in ((config_path, config, merged_config), (cmdline_path, cmdline, merged_cmdline)):
        if old != new:
            result.changes[path] = (old, new)
    return result


def _write_atomic(path: Path, text: str, mode: int) -> None:
    """Write beside the file, flush to the card, rename over it: a power cut leaves the old or the new file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def apply(
    boot: Path,
    *,
    dry_run: bool = False,
    fragments: Path | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """Apply the settings (from `fragments` or the packaged files) to `boot`; returns the exit status."""
    source = (lambda name: _read(fragments / name, name)) if fragments is not None else packaged_fragment
    result = plan(boot, source("config.txt"), source("cmdline.txt"))
    for note in result.notes:
        out(f"note: {note}")
    if dry_run:
        if not result.changes:
            out("unchanged")
            return EXIT_OK
        out(result.diff().rstrip("\n"))
        return EXIT_WOULD_CHANGE
    if not result.changes:
        out("unchanged")
        return EXIT_OK
    for path, (old, new) in result.changes.items():
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        mode = stat.S_IMODE(path.stat().st_mode)
        if not backup.exists():  # the first one keeps the file as it was before edgekube touched it
            _write_atomic(backup, old, mode)
        _write_atomic(path, new, mode)
    names = ", ".join(str(p) for p in result.changes)
    out(f"changed: {names} (originals in *{BACKUP_SUFFIX}; reboot for them to take effect)")
    return EXIT_OK
