"""Runs the doctor's checks for a role and renders the checklist or JSON; `edgekube doctor` (edgekube.main) calls it.

Exit status: 0 every check passed, 1 at least one failed, 2 only warnings (scripts may accept 2 where a board is
known to differ, e.g. a master without GPIO).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekube.bus.brokers import resolve
from edgekube.bus.tls import TlsFiles
from edgekube.doctor import host, services
from edgekube.doctor.result import Result, Status, failed

ROLES = ("node", "master")


@dataclass(frozen=True)
class Settings:
    """What the checks need from the daemon's configuration (edgekube.main builds it from --config)."""

    role: str = "node"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    #: The config's `brokers` ("HOST:PORT", two-master clusters): each is checked; empty: mqtt_host:mqtt_port.
    brokers: tuple[str, ...] = ()
    tls: TlsFiles = field(default_factory=TlsFiles)
    podman_url: str = "unix:///run/podman/podman.sock"
    #: The agent's state_dir or the master's data_dir.
    state_dir: Path = Path("/var/lib/edgekube")
    #: Where the board's /proc, /sys, /dev and /run are (tests: a temp tree).
    root: Path = Path("/")
    broker_timeout: float = 5.0


def run_checks(settings: Settings, *, config_error: str | None = None) -> list[Result]:
    """Every check of the role, in checklist order (the config first: the others use it)."""
    root = settings.root
    results: list[Result] = []
    if config_error is not None:
        results.append(failed("config", "configuration", config_error, "fix the --config file or the flags"))
    if settings.role == "node":
        results.append(services.podman_binary())
        socket_result, info = services.podman_socket(settings.podman_url)
        results += [services.oci_runtime(info), socket_result, host.cgroup_memory(root)]
    results += [host.swap(root), host.clock(root)]
    if config_error is None:
        for index, b in enumerate(resolve(settings.brokers, settings.mqtt_host, settings.mqtt_port)):
            result = services.broker(b.host, b.port, settings.tls, settings.broker_timeout)
            results.append(result if index == 0 else replace(result, check=f"broker-{index + 1}"))
    if settings.role == "node":
        results += [host.nfs_client(root), host.gpio(root)]
    results.append(host.free_space(root, "root"))
    if settings.state_dir != root:
        results.append(host.free_space(settings.state_dir, "state"))
    results.append(host.sd_card(root))
    return results


def exit_status(results: Sequence[Result]) -> int:
    statuses = {r.status for r in results}
    if Status.FAIL in statuses:
        return 1
    return 2 if Status.WARN in statuses else 0


def summary(results: Sequence[Result]) -> str:
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    parts = [f"{counts[Status.PASS]} passed", f"{counts[Status.FAIL]} failed", f"{counts[Status.WARN]} warning(s)"]
    return ", ".join(parts)


def render_text(results: Sequence[Result], heading: str) -> str:
    """The checklist: one line per check (✓ pass, ! warning, ✗ failure), each problem followed by its fix."""
    width = max((len(r.title) for r in results), default=0)
    lines = [heading, ""]
    for r in results:
        lines.append(f"{r.status.mark} {r.title.ljust(width)}  {r.detail}")
        if r.fix:
            lines.append(f"  {' ' * width}  fix: {r.fix}")
    lines += ["", summary(results)]
    return "\n".join(lines)


def render_json(results: Sequence[Result], settings: Settings) -> str:
    doc: dict[str, Any] = {
        "role": settings.role,
        "checks": [r.as_json() for r in results],
        "summary": {s.value: sum(1 for r in results if r.status is s) for s in Status},
        "exitStatus": exit_status(results),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def doctor(
    settings: Settings, *, as_json: bool, out: Callable[[str], None] = print, config_error: str | None = None
) -> int:
    """Run the checks, print the report; returns the exit status."""
    results = run_checks(settings, config_error=config_error)
    if as_json:
        out(render_json(results, settings))
    else:
        out(render_text(results, f"edgekube doctor: {settings.role} checks"))
    return exit_status(results)
