"""Pure merges of edgekube's settings into a boot partition's config.txt and cmdline.txt; for firmware.apply.

config.txt gets one marked block, replaced on every apply (never a second copy); cmdline.txt stays exactly one
line: missing tokens are appended, the others kept in their order, tokens marked for removal dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgekube.model.errors import ValidationError

BEGIN = "# >>> edgekube: managed by `edgekube firmware apply`, edits inside are replaced >>>"
END = "# <<< edgekube <<<"
_SETTING = re.compile(r"^\s*([A-Za-z0-9_]+)(?:=([^#]*))?")


@dataclass(frozen=True)
class CmdlineFragment:
    """Tokens to have on the kernel command line, and tokens to take off it."""

    add: tuple[str, ...]
    remove: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> CmdlineFragment:
        """The fragment file: tokens separated by blanks or lines, `#` comment lines, `-token` to remove."""
        tokens = [t for line in text.splitlines() if not line.lstrip().startswith("#") for t in line.split()]
        return cls(
            add=tuple(dict.fromkeys(t for t in tokens if not t.startswith("-"))),
            remove=tuple(dict.fromkeys(t[1:] for t in tokens if t.startswith("-") and len(t) > 1)),
        )


def config_block(fragment: str) -> list[str]:
    """The lines of the edgekube block for a config.txt fragment: its settings and comments after the header."""
    lines = fragment.splitlines()
    while lines and lines[0].startswith("#"):  # the fragment file's own header says how to use the file
        lines.pop(0)
    return [BEGIN, *lines, END]


def merge_config(text: str, fragment: str) -> str:
    """`text` (a config.txt) with the edgekube block replaced by, or appended as, the fragment's block."""
    lines = text.splitlines()
    block = config_block(fragment)
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(begins) > 1 or len(ends) > 1:
        raise ValidationError(
            f"config.txt: {len(begins)} edgekube blocks: keep one (the lines between `{BEGIN}` and `{END}`)"
        )
    if bool(begins) != bool(ends) or (begins and ends[0] < begins[0]):
        where = f"line {(begins or ends)[0] + 1}"
        raise ValidationError(f"config.txt: the edgekube block at {where} has no matching marker; fix it by hand")
    if begins:
        merged = lines[: begins[0]] + block + lines[ends[0] + 1 :]
    else:
        merged = [*lines, *([""] if lines and lines[-1].strip() else []), *block]
    return "\n".join(merged) + "\n"


def outside_settings(text: str, fragment: str) -> list[str]:
    """Settings the block sets that config.txt also sets outside it (the block comes later, so it wins)."""
    wanted = {m.group(1) for line in config_block(fragment) if (m := _SETTING.match(line)) and "=" in line}
    inside, notes = False, []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() in (BEGIN, END):
            inside = line.strip() == BEGIN
            continue
        match = _SETTING.match(line)
        if not inside and match and match.group(1) in wanted and "=" in line:
            if match.group(1) in ("dtparam", "dtoverlay"):
                continue  # repeatable: each line sets its own parameter
            notes.append(f"config.txt line {number}: {line.strip()} (the edgekube block sets {match.group(1)} later)")
    return notes


def merge_cmdline(text: str, fragment: CmdlineFragment) -> str:
    """`text` (a cmdline.txt) with the fragment's tokens added at the end and its removals dropped; one line."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValidationError("cmdline.txt: empty; the board would not boot with it (restore it from a backup)")
    if len(lines) > 1:
        raise ValidationError(
            f"cmdline.txt: {len(lines)} lines; the firmware reads only the first, so it must be one line "
            "(join them with spaces by hand)"
        )
    tokens = [t for t in lines[0].split() if t not in fragment.remove]
    tokens += [t for t in fragment.add if t not in tokens]
    ending = "\n" if text.endswith("\n") else ""
    return " ".join(tokens) + ending
