"""`edgekube up --network pod` as a newcomer runs it: the README's Services lines work, `down` leaves no namespace."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.local import netns
from edgekube.local.broker import free_port
from tests.support.checkout import ROOT, scratch_checkout
from tests.support.cluster import wait_for
from tests.support.prerequisites import require_mosquitto, require_netns, require_podman

BIN = Path(sys.executable).parent

pytestmark = pytest.mark.integration


def readme_services_lines() -> list[str]:
    """The commands of the README's "Services" example, in order (comments stripped)."""
    section = (ROOT / "README.md").read_text().split("### Services", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 180, check: bool = True) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout if proc.returncode == 0 else ""


def _sh(line: str, cwd: Path, env: dict[str, str], check: bool = True) -> str:
    return _run(["sh", "-c", line], cwd, env, check=check)


def _http_get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return str(response.read().decode().strip())
    except OSError as exc:
        return f"failed: {exc}"


def _placed(work: Path, env: dict[str, str]) -> dict[str, tuple[str, str]] | None:
    """{pod: (node, podIP)} once the client and three web pods all have both, else None."""
    columns = "NAME:.metadata.name,NODE:.spec.nodeName,IP:.status.podIP"
    rows = [r.split() for r in _sh(f".venv/bin/ekctl get pods -o custom-columns={columns} --no-headers", work, env)
            .splitlines()]  # fmt: skip
    placed = {row[0]: (row[1], row[2]) for row in rows if len(row) == 3 and "<none>" not in row}
    return placed if len(placed) == 4 else None


@pytest.fixture
def checkout() -> Iterator[tuple[Path, dict[str, str]]]:
    """A directory laid out like the repository for the README's relative paths: examples/ and .venv/bin."""
    require_podman()
    require_mosquitto()
    require_netns()
    with scratch_checkout("ek-svc", BIN) as (work, env):
        (work / ".venv").mkdir()
        (work / ".venv" / "bin").symlink_to(BIN)
        yield work, env


@pytest.mark.timeout(300)
def test_the_readme_services_example_answers_by_name_across_nodes_and_down_removes_the_namespaces(
    checkout: tuple[Path, dict[str, str]],
) -> None:
    work, env = checkout
    lines = readme_services_lines()
    up, apply, get_svc, fetch, port_forward, lint = lines
    assert up.startswith("make down && make up NODES=3 NETWORK=pod")
    # `make up` is `make install` and then this (Makefile); the scratch checkout has no Makefile.
    _run([str(BIN / "edgekube"), "up", "--nodes", "3", "--network", "pod", "--no-example"], work, env)
    record = json.loads((work / ".edgekube" / "run" / "netns.json").read_text())
    namespaces = [netns.NetNode(int(n["slot"])) for n in record["nodes"].values()]
    assert sorted(record["nodes"]) == ["node-1", "node-2", "node-3"]
    assert all(netns.exists(n.name) for n in namespaces) and netns.exists(record["lan"])

    _sh(apply, work, env)
    placed = wait_for("the client and three web pods placed, with addresses", lambda: _placed(work, env), 90)
    web = {name: ip for name, (_node, ip) in placed.items() if name.startswith("web-")}
    assert placed["client"][0] == "node-1"
    assert {node for name, (node, _ip) in placed.items() if name.startswith("web-")} <= {"node-2", "node-3"}

    def listed_with_three_endpoints() -> str | None:
        out = _sh(get_svc, work, env)
        return out if len(re.findall(r":8080\b", out)) == 3 else None

    endpoints = wait_for("the Service's three endpoints", listed_with_three_endpoints, 60)
    assert "service/web" in endpoints
    assert sorted(re.findall(r"(\d+\.\d+\.\d+\.\d+):8080", endpoints)) == sorted(web.values())

    # From node-1, by name, to pods that all run on node-2 and node-3: the answer crossed nodes.
    answer = wait_for("the client's wget of http://web", lambda: _sh(fetch, work, env, check=False).strip(), 60)
    assert answer in web

    local_port = free_port()
    forward = subprocess.Popen(
        ["sh", "-c", f"exec {port_forward.replace('8080:80', f'{local_port}:80')}"],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{local_port}/"
        forwarded = wait_for("the Service through port-forward", lambda: _http_get(url) in web and _http_get(url), 30)
        assert forwarded in web
    finally:
        forward.terminate()
        forward.wait(timeout=10)

    assert "OK" in _sh(lint, work, env)

    _run([str(BIN / "edgekube"), "down"], work, env)
    assert not any(netns.exists(n.name) for n in namespaces)
    assert not netns.exists(record["lan"])
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert not any(re.search(rf"\b{n.host_veth}\b", links) for n in namespaces)
