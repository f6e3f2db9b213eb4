"""ekctl starts light: --help and parsing load no pydantic, paho, yaml or wire models; a command loads what it uses."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pydantic", "paho", "yaml", "podman", "requests", "edgekube.model.wire", "edgekube.cli.client")


def loaded_after(script: str) -> list[str]:
    """Run `script` in a fresh interpreter; the heavy modules it left in sys.modules (its stdout is discarded)."""
    probe = (
        "import io, json, sys, contextlib\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        + "".join(f"    {line}\n" for line in script.splitlines())
        + f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted({m for m in sys.modules for h in heavy if m == h or m.startswith(h + '.')})))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60).stdout
    return list(json.loads(out.splitlines()[-1]))


def test_help_loads_nothing_heavy() -> None:
    assert loaded_after("from edgekube.cli.main import main\nmain(['--help'])") == []


def test_parsing_any_command_loads_nothing_heavy() -> None:
    script = (
        "from edgekube.cli.main import parse\n"
        "from edgekube.cli.parser import build_parser\n"
        "for argv in (['get', 'pods', '-o', 'yaml'], ['apply', '-f', 'x.yaml', '--wait'], ['lint', 'x']):\n"
        "    parse(build_parser(), argv)"
    )
    assert loaded_after(script) == []


def test_a_command_that_never_connects_loads_no_mqtt() -> None:
    # lint validates manifests (pydantic, yaml) offline: the connection and its wire models stay unloaded.
    script = "from edgekube.cli.main import main\nmain(['lint', '/nonexistent.yaml'])"
    loaded = loaded_after(script)
    assert "paho" not in {m.split(".")[0] for m in loaded}
    assert "edgekube.cli.client" not in loaded
