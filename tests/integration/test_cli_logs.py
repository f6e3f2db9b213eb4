"""`ekctl logs` and `ekctl exec` on a real cluster: Mosquitto, a master and an agent in-process, real Podman.

A container that prints one `run <uptime>` line and exits is restarted by the agent (the same Podman container,
whose log keeps every run); `--previous` shows exactly the last terminated run, the window its status records.
`--timestamps`, `--since`, `--since-time` and `-l` (lines prefixed `[pod/NAME/CONTAINER]`, 10 a pod) pass through
master and agent to Podman's log API. `exec` runs through master and agent in Podman's exec API and ekctl exits
with the command's status. `logs -f` (ekctl as its own process) prints the lines the node pushes on its stream,
across a restart of the container, and ends with the reason when the pod is deleted (exit status 0) or when its
node's agent is killed (a process of its own, SIGKILLed: its Last Will; exit status 1, the node named). `exec -it`
runs under a real pseudo-terminal (python's pty): the command sees a TTY, follows a resize, and ekctl exits with its
status. `cp` copies a file and a directory in and out through Podman's archive API.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.app import Agent
from edgekube.agent.runtime.protocol import LABEL_NODE
from edgekube.cli.main import main
from edgekube.local.broker import Mosquitto
from edgekube.local.images import DEMO_IMAGE
from edgekube.local.podman_service import PodmanService
from edgekube.master.app import Master
from tests.support.cluster import ApiClient, start_agent, start_master, stop_agent, wait_for
from tests.support.ekctl import following
from tests.support.fleet import Proc

pytestmark = pytest.mark.integration

POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: logs}}}}
spec:
  containers:
    - name: c
      image: {image}
      command: ["sh", "-c", "echo run $(cut -d' ' -f1 /proc/uptime); echo second line; sleep 2; exit 1"]
"""

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def cluster(
    mosquitto: Mosquitto, podman_service: PodmanService, demo_image: str, tmp_path: Path
) -> Iterator[tuple[Master, Agent, ApiClient]]:
    master = start_master(mosquitto.port, tmp_path / "master")
    agent = start_agent(mosquitto.port, f"node-{uuid.uuid4().hex[:6]}", podman_service, tmp_path / "agent")
    client = ApiClient(mosquitto.port)
    try:
        yield master, agent, client
    finally:
        client.close()
        stop_agent(agent)
        master.stop()


def ekctl(port: int, *argv: str) -> int:
    return main(["--mqtt-host", "127.0.0.1", "--mqtt-port", str(port), "--timeout", "10", *argv])


def restarted(client: ApiClient, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        pod = client.pod(name)
        statuses = pod.get("status", {}).get("containerStatuses") or []
        return pod if statuses and statuses[0].get("restartCount", 0) >= 1 else None

    found: dict[str, Any] = wait_for(f"{name} restarted", check, timeout=90)
    return found


def runs(text: str) -> list[str]:
    return [line for line in text.splitlines() if " run " in f" {line}" or line.startswith("run ")]


def test_logs_previous_shows_the_last_terminated_run_and_the_full_log_keeps_every_run(
    cluster: tuple[Master, Agent, ApiClient], mosquitto: Mosquitto, tmp_path: Path, capsys: Capture
) -> None:
    _master, _agent, client = cluster
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD.format(name="crash", image=DEMO_IMAGE))
    assert ekctl(mosquitto.port, "apply", "-f", str(manifest)) == 0
    restarted(client, "crash")
    capsys.readouterr()

    assert ekctl(mosquitto.port, "logs", "crash", "--previous") == 0
    previous = capsys.readouterr().out
    assert len(runs(previous)) == 1, previous
    assert previous.splitlines()[1] == "second line"
    assert ekctl(mosquitto.port, "logs", "crash") == 0
    everything = runs(capsys.readouterr().out)
    assert len(everything) >= 2 and runs(previous)[0] in everything[:-1]  # an earlier run than the newest one

    assert ekctl(mosquitto.port, "logs", "crash", "--timestamps", "--tail", "1") == 0
    stamp, _, rest = capsys.readouterr().out.rstrip("\n").partition(" ")
    assert rest == "second line" or rest.startswith("run ")
    assert abs(datetime.fromisoformat(stamp.replace("Z", "+00:00")) - datetime.now(UTC)) < timedelta(minutes=5)

    assert ekctl(mosquitto.port, "logs", "crash", "--since", "1h") == 0
    assert len(runs(capsys.readouterr().out)) >= 2
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ekctl(mosquitto.port, "logs", "crash", "--since-time", future) == 0
    assert capsys.readouterr().out == ""


def test_logs_of_a_container_never_restarted_has_no_previous(
    cluster: tuple[Master, Agent, ApiClient], mosquitto: Mosquitto, tmp_path: Path, capsys: Capture
) -> None:
    _master, _agent, client = cluster
    manifest = tmp_path / "idle.yaml"
    manifest.write_text(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: idle, labels: {{app: logs}}}}\nspec:\n  containers:\n"
        f"    - {{name: c, image: {DEMO_IMAGE}, command: [sh, -c, 'echo hello; sleep 600']}}\n"
    )
    assert ekctl(mosquitto.port, "apply", "-f", str(manifest)) == 0
    wait_for("idle running", lambda: client.pod("idle").get("status", {}).get("phase") == "Running", timeout=60)
    wait_for("idle logged", lambda: "hello" in (client.logs("idle").text or ""), timeout=30)
    capsys.readouterr()
    assert ekctl(mosquitto.port, "logs", "idle", "-p") == 1
    assert 'previous terminated container "c" in pod "idle" not found' in capsys.readouterr().err
    assert ekctl(mosquitto.port, "logs", "-l", "app=logs") == 0
    assert capsys.readouterr().out == "[pod/idle/c] hello\n"


def test_exec_runs_in_the_pod_on_its_node_and_exits_with_the_command_s_status(
    cluster: tuple[Master, Agent, ApiClient], mosquitto: Mosquitto, tmp_path: Path, capsys: Capture
) -> None:
    _master, agent, client = cluster
    manifest = tmp_path / "shell.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: shell}\nspec:\n  containers:\n"
        f"    - {{name: c, image: {DEMO_IMAGE}, command: [sh, -c, 'echo from-the-image > /tmp/mark; sleep 600']}}\n"
    )
    assert ekctl(mosquitto.port, "apply", "-f", str(manifest)) == 0
    wait_for("shell running", lambda: client.pod("shell").get("status", {}).get("phase") == "Running", timeout=60)
    capsys.readouterr()
    code = ekctl(mosquitto.port, "exec", "shell", "--", "sh", "-c", "cat /tmp/mark; hostname; echo oops >&2; exit 3")
    out = capsys.readouterr().out
    assert code == 3
    assert out.splitlines() == ["from-the-image", "shell", "oops"]
    assert client.pod("shell")["spec"]["nodeName"] == agent.node
    assert ekctl(mosquitto.port, "exec", "shell", "-c", "c", "--", "true") == 0
    assert ekctl(mosquitto.port, "exec", "shell", "--", "no-such-command") != 0


def test_logs_follow_prints_new_lines_across_a_restart_and_ends_when_the_pod_is_deleted(
    cluster: tuple[Master, Agent, ApiClient], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    _master, _agent, client = cluster
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD.format(name="crash", image=DEMO_IMAGE))
    assert ekctl(mosquitto.port, "apply", "-f", str(manifest)) == 0
    wait_for("crash logged", lambda: "run" in (client.logs("crash").text or ""), timeout=60)
    with following(mosquitto.port, "logs", "crash", "-f") as ekctl_f:
        seen = [ekctl_f.lines.get(timeout=30)]
        while sum(line.startswith("run ") for line in seen) < 3:  # the first run, then two after restarts
            seen.append(ekctl_f.lines.get(timeout=60))
        assert seen[0].startswith("run ") and seen[1] == "second line"
        assert len(set(seen)) == len(seen) - seen.count("second line") + 1  # no run printed twice
        assert ekctl(mosquitto.port, "delete", "pod", "crash") == 0
        code, err = ekctl_f.ended()
        assert code == 0, err
        assert "logs -f of crash ended:" in err and "not found" in err


def _read_until(fd: int, marker: bytes, seen: bytearray) -> bytes:
    while marker not in seen:
        ready, _, _ = select.select([fd], [], [], 30)
        assert ready, f"no {marker!r} in {bytes(seen)!r}"
        try:
            seen += os.read(fd, 4096)
        except OSError:  # the child closed its side
            break
    return bytes(seen)


def test_exec_it_gives_the_command_a_terminal_follows_a_resize_and_exits_with_its_status(
    cluster: tuple[Master, Agent, ApiClient], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    _master, _agent, client = cluster
    manifest = tmp_path / "shell.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: term}\nspec:\n  containers:\n"
        f"    - {{name: c, image: {DEMO_IMAGE}, command: [sh, -c, 'sleep 600']}}\n"
    )
    assert ekctl(mosquitto.port, "apply", "-f", str(manifest)) == 0
    wait_for("term running", lambda: client.pod("term").get("status", {}).get("phase") == "Running", timeout=60)
    script = 'tty; while read line; do echo "size=$(stty size)"; [ "$line" = q ] && exit 7; done'
    argv = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(mosquitto.port), "exec", "-it", "term", "--"]
    argv += ["sh", "-c", script]
    pid, fd = pty.fork()
    if pid == 0:  # the child: ekctl on the pty's terminal side
        os.execv(sys.executable, [sys.executable, "-m", "edgekube.cli.main", *argv])
    seen = bytearray()
    try:
        _read_until(fd, b"/dev/pts/", seen)  # `tty`: the command's stdin is a terminal in the container
        os.write(fd, b"hello\r")
        _read_until(fd, b"size=24 80", seen)  # a fresh pty says 0 x 0: ekctl asked for 24 x 80
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 41, 101, 0, 0))  # ekctl gets SIGWINCH
        for _ in range(100):  # the resize travels ekctl → master → agent → Podman: ask until the command sees it
            seen.clear()
            os.write(fd, b"\r")
            if b"size=41 101" in _read_until(fd, b"size=", seen) + _read_until(fd, b"\n", seen):
                break
        assert b"size=41 101" in seen
        os.write(fd, b"q\r")
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 7
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def test_cp_copies_a_file_in_and_a_directory_out(
    cluster: tuple[Master, Agent, ApiClient], mosquitto: Mosquitto, tmp_path: Path, capsys: Capture
) -> None:
    _master, _agent, client = cluster
    manifest = tmp_path / "box.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: box}\nspec:\n  containers:\n"
        f"    - {{name: c, image: {DEMO_IMAGE}, command: [sh, -c, 'mkdir -p /data/sub; echo deep > /data/sub/f; "
        "sleep 600']}\n"
    )
    assert ekctl(mosquitto.port, "apply", "-f", str(manifest)) == 0
    wait_for("box running", lambda: client.pod("box").get("status", {}).get("phase") == "Running", timeout=60)
    local = tmp_path / "local.bin"
    local.write_bytes(bytes(range(256)) * 100)  # binary, 25.6 KB
    assert ekctl(mosquitto.port, "cp", str(local), "box:/tmp/copied.bin") == 0
    capsys.readouterr()
    assert ekctl(mosquitto.port, "exec", "box", "--", "sh", "-c", "wc -c < /tmp/copied.bin") == 0
    assert capsys.readouterr().out.strip() == "25600"
    back = tmp_path / "back.bin"
    assert ekctl(mosquitto.port, "cp", "box:/tmp/copied.bin", str(back)) == 0
    assert back.read_bytes() == local.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    assert ekctl(mosquitto.port, "cp", "box:/data", str(out)) == 0
    assert (out / "data" / "sub" / "f").read_text() == "deep\n"
    assert ekctl(mosquitto.port, "cp", "box:/no/such", str(tmp_path / "x")) == 1
    assert "no such file or directory" in capsys.readouterr().err


def test_logs_follow_with_a_selector_prefixes_each_pod_s_lines_and_ends_when_all_are_gone(
    cluster: tuple[Master, Agent, ApiClient], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    _master, _agent, client = cluster
    for name in ("tick-a", "tick-b"):
        manifest = tmp_path / f"{name}.yaml"
        manifest.write_text(
            f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: tick}}}}\nspec:\n  containers:\n"
            f"    - {{name: c, image: {DEMO_IMAGE}, command: [sh, -c, 'while :; do echo tick; sleep 0.3; done']}}\n"
        )
        assert ekctl(mosquitto.port, "apply", "-f", str(manifest)) == 0

    def running(name: str) -> bool:
        return bool(client.pod(name).get("status", {}).get("phase") == "Running")

    wait_for("both ticking", lambda: running("tick-a") and running("tick-b"))
    with following(mosquitto.port, "logs", "-f", "-l", "app=tick") as ekctl_f:
        heard: set[str] = set()
        while heard != {"[pod/tick-a/c] tick", "[pod/tick-b/c] tick"}:
            heard.add(ekctl_f.lines.get(timeout=30))
        assert ekctl(mosquitto.port, "delete", "pod", "tick-a", "tick-b") == 0
        code, err = ekctl_f.ended()
        assert code == 0, err
        assert "logs -f of tick-a ended" in err and "logs -f of tick-b ended" in err


def test_logs_follow_ends_with_status_1_naming_the_node_when_the_pod_s_agent_is_killed(
    cluster: tuple[Master, Agent, ApiClient], mosquitto: Mosquitto, podman_service: PodmanService, tmp_path: Path
) -> None:
    """The pod runs on a second node whose agent is a process of its own; SIGKILL drops its broker connection.

    The pod tolerates the node's NoExecute taints for 300 s (Kubernetes' default tolerations): without them the
    master's default pod-eviction-timeout (0) evicts it at once, and the stream ends as for a deleted pod.
    """
    _master, _agent, client = cluster
    node = f"doomed-{uuid.uuid4().hex[:6]}"
    argv = [
        sys.executable, "-m", "edgekube.main", "agent", "--node", node, "--mqtt-port", str(mosquitto.port),
        "--podman-url", podman_service.url, "--state-dir", str(tmp_path / "doomed"),
        "--fence-dir", str(tmp_path / "fence"), "--resync-interval", "0.5",
    ]  # fmt: skip
    agent = Proc(node, lambda: argv, tmp_path / "doomed.log")
    agent.start()
    try:
        manifest = tmp_path / "count.yaml"
        manifest.write_text(
            f"apiVersion: v1\nkind: Pod\nmetadata: {{name: count}}\nspec:\n  nodeName: {node}\n  tolerations:\n"
            "    - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 300}\n"
            "    - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 300}\n"
            "  containers:\n"
            f"    - {{name: c, image: {DEMO_IMAGE}, command: [sh, -c, 'for i in 1 2 3; do echo line $i; done;"
            " sleep 600']}\n"
        )
        assert ekctl(mosquitto.port, "apply", "-f", str(manifest)) == 0
        wait_for("count logged", lambda: "line 3" in (client.logs("count").text or ""), timeout=60)
        with following(mosquitto.port, "logs", "count", "-f") as ekctl_f:
            seen = [ekctl_f.lines.get(timeout=30) for _ in range(3)]
            # Quiet from here: ekctl renews only on its timer (a third of the lease), long after the Will arrived.
            agent.kill()  # SIGKILL: the broker publishes the agent's Last Will
            code, err = ekctl_f.ended()
            while not ekctl_f.lines.empty():
                seen.append(ekctl_f.lines.get())
        assert code == 1, err
        assert err.splitlines()[0] == (
            f"error: logs -f of count ended: node {node} is not ready: AgentOffline: the agent disconnected"
            " (Last Will received)"
        ), err
        assert seen == ["line 1", "line 2", "line 3"]  # each line once, in order, nothing after them
    finally:
        agent.kill()
        ids = podman_service.podman("pod", "ps", "-q", "--filter", f"label={LABEL_NODE}={node}").stdout.split()
        if ids:
            podman_service.podman("pod", "rm", "-f", "-t", "0", *ids)
