"""edgekube.local.processes: pidfiles, liveness (zombies, reaping, foreign pids) and stopping processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgekube.local.processes import (
    alive,
    live_pid,
    read_pidfile,
    stop_child,
    stop_pidfile,
    terminate,
    write_pidfile,
)

_IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.parametrize("text", ["", "abc", "0", "-5", "12 13"])
def test_a_pidfile_without_a_positive_pid_reads_as_none(tmp_path: Path, text: str) -> None:
    path = tmp_path / "x.pid"
    path.write_text(text)
    assert read_pidfile(path) is None
    assert read_pidfile(tmp_path / "missing.pid") is None


def test_write_pidfile_creates_the_directory_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "run" / "x.pid"
    write_pidfile(path, 1234)
    assert path.read_text() == "1234\n"
    assert read_pidfile(path) == 1234
    assert [p.name for p in path.parent.iterdir()] == ["x.pid"]


def test_alive_tells_running_from_missing_and_invalid_pids() -> None:
    assert alive(os.getpid())
    assert not alive(None)
    assert not alive(0)  # kill(0, 0) would answer for the whole process group
    assert not alive(-1)
    assert not alive(999_999_999)


def test_an_exited_child_is_a_zombie_that_counts_as_dead_and_reap_collects_it() -> None:
    proc = subprocess.Popen(["true"])
    stat = Path(f"/proc/{proc.pid}/stat")
    _wait_until(lambda: stat.read_text().rpartition(")")[2].split()[0] == "Z")
    assert not alive(proc.pid)
    assert stat.exists()  # still a zombie: alive() alone does not reap
    assert not alive(proc.pid, reap=True)
    assert not stat.exists()
    proc.wait()


def test_stop_pidfile_terminates_the_recorded_process_and_removes_the_file(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    path = tmp_path / "x.pid"
    write_pidfile(path, sleeper.pid)
    assert live_pid(path) == sleeper.pid
    assert stop_pidfile(path, timeout=5)
    assert sleeper.wait(timeout=5) == -signal.SIGTERM
    assert not path.exists()
    assert not stop_pidfile(path)


def test_stop_pidfile_leaves_a_process_that_is_not_ours_alone(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    path = tmp_path / "x.pid"
    write_pidfile(path, sleeper.pid)
    assert live_pid(path, is_ours=lambda pid: False) is None
    assert not stop_pidfile(path, is_ours=lambda pid: False)
    assert not path.exists()
    assert sleeper.poll() is None


def test_terminate_kills_a_process_that_ignores_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _IGNORES_SIGTERM], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with proc.stdout:
        assert proc.stdout.readline() == b"ready\n"
        terminate(proc.pid, timeout=0.2)
        assert proc.wait(timeout=5) == -signal.SIGKILL


def test_terminate_a_missing_pid_is_a_no_op() -> None:
    terminate(999_999_999, timeout=0.1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_stop_child_signals_and_reaps(sleeper: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    stop_child(sleeper, timeout=5, sig=sig)
    assert sleeper.returncode == -sig
    stop_child(sleeper, timeout=5)  # already reaped: nothing to do
