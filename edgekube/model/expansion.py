"""Kubernetes' `$(VAR)` expansion of env values, command and args; used by master.configdata and the agent's specgen.

A port of third_party/forked/golang/expansion/expand.go (Expand, tryReadVariableName) with kubelet's mapping: a
defined name is replaced by its value, an undefined one is left as written (`$(NOPE)`), `$$` is a literal `$`.
"""

from __future__ import annotations

from collections.abc import Mapping


def expand(text: str, values: Mapping[str, str]) -> str:
    """`text` with every `$(NAME)` in `values` replaced, as Kubernetes expands env, command and args."""
    if "$" not in text:
        return text
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_var, advance = _read_name(text[cursor + 1 :])
            out.append(values.get(read, f"$({read})") if is_var else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def _read_name(rest: str) -> tuple[str, bool, int]:
    if rest[0] == "$":  # an escaped operator
        return "$", False, 1
    if rest[0] == "(":
        closing = rest.find(")", 1)
        if closing != -1:
            return rest[1:closing], True, closing + 1
        return "$(", False, 1  # an incomplete reference
    return "$" + rest[0], False, 1
