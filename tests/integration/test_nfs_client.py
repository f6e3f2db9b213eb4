"""NfsClient and probe() against a real NFS-Ganesha: the path API, and what callers see when the server goes away.

A stopped server refuses connections; a SIGSTOPped one accepts them and never answers (a hung or unreachable NAS).
In both cases probe() must answer within its timeout and client calls must raise StorageError instead of hanging;
once the server is back, the same client works again.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from edgekube.local.nfs import Ganesha
from edgekube.model.errors import StorageError
from edgekube.nfs.client import NfsClient
from edgekube.nfs.probe import probe
from edgekube.nfs.target import NfsTarget
from tests.support.nfs import running_ganesha

pytestmark = pytest.mark.integration


@pytest.fixture
def ganesha() -> Iterator[Ganesha]:
    with running_ganesha() as server:
        yield server


@pytest.fixture
def client(ganesha: Ganesha) -> Iterator[NfsClient]:
    with NfsClient(ganesha.target(), timeout=2.0) as nfs:
        yield nfs


def test_the_path_api_creates_reads_renames_and_removes_files_that_land_in_the_export(
    ganesha: Ganesha, client: NfsClient
) -> None:
    export = ganesha.export_dir
    client.makedirs("pvc-1/data/logs")
    client.makedirs("pvc-1/data/logs")  # exist_ok
    assert client.exists("pvc-1/data") and not client.exists("pvc-1/nope") and client.exists("")
    assert (export / "pvc-1" / "data" / "logs").is_dir()

    payload = os.urandom(200_000)  # many WRITE chunks
    client.write_bytes("pvc-1/data/blob", payload)
    assert client.read_bytes("pvc-1/data/blob") == payload
    assert (export / "pvc-1" / "data" / "blob").read_bytes() == payload
    client.write_bytes("pvc-1/data/blob", b"replaced")  # atomically replaces, leaving no temporary file
    assert client.read_bytes("pvc-1/data/blob") == b"replaced"
    assert client.listdir("pvc-1/data") == ["blob", "logs"] == sorted(os.listdir(export / "pvc-1" / "data"))

    st = client.stat("pvc-1/data/blob")
    assert (st.st_size, stat.S_ISREG(st.st_mode), stat.S_IMODE(st.st_mode)) == (8, True, 0o644)
    assert abs(st.st_mtime - time.time()) < 60

    client.rename("pvc-1/data/blob", "pvc-1/blob2")
    assert client.listdir("pvc-1") == ["blob2", "data"]
    client.remove("pvc-1/blob2")
    client.rmtree("pvc-1")
    assert client.listdir() == [] and not (export / "pvc-1").exists()


def test_a_missing_file_raises_storage_error_with_enoent_naming_server_and_path(
    ganesha: Ganesha, client: NfsClient
) -> None:
    with pytest.raises(StorageError) as failed:
        client.read_bytes("missing.txt")
    assert failed.value.errno == 2
    assert f"127.0.0.1:{ganesha.port}" in str(failed.value) and "/export/missing.txt" in str(failed.value)


def test_paths_with_dotdot_are_refused(client: NfsClient) -> None:
    with pytest.raises(StorageError):
        client.read_bytes("../etc/passwd")


def test_threads_sharing_one_client_each_read_back_what_they_wrote(client: NfsClient) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                data = hashlib.sha256(f"{n}-{i}".encode()).digest() * 200
                client.write_bytes(f"t{n}-{i}", data)
                assert client.read_bytes(f"t{n}-{i}") == data
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(client.listdir()) == 80


def test_probe_returns_none_for_a_usable_export_and_a_reason_for_a_missing_path_or_a_closed_port(
    ganesha: Ganesha,
) -> None:
    assert probe(ganesha.target()) is None
    missing = probe(ganesha.target("no-such-dir"))
    assert missing is not None and "NOENT" in missing
    closed = probe(NfsTarget("127.0.0.1", "/export", ganesha.port + 1 if ganesha.port < 65535 else 1))
    assert closed is not None and "cannot reach nfs server" in closed


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    """What `fn` returned or the StorageError it raised, and how long it took."""
    start = time.monotonic()
    try:
        result = fn()
    except StorageError as exc:
        result = exc
    return result, time.monotonic() - start


def test_a_stopped_server_gives_a_probe_reason_and_storage_errors_quickly_and_a_restart_heals_the_client(
    ganesha: Ganesha, client: NfsClient
) -> None:
    client.write_bytes("before", b"1")
    ganesha.stop()

    reason, took = _timed(lambda: probe(ganesha.target(), timeout=2.0))
    assert isinstance(reason, str) and "cannot reach nfs server" in reason and took < 2.5
    error, took = _timed(lambda: client.read_bytes("before"))
    assert isinstance(error, StorageError) and took < 3.0, (error, took)
    error, took = _timed(client.listdir)
    assert isinstance(error, StorageError) and took < 3.0

    ganesha.start()
    assert probe(ganesha.target()) is None
    assert client.read_bytes("before") == b"1"
    client.write_bytes("after", b"2")
    assert (ganesha.export_dir / "after").read_bytes() == b"2"


def test_a_hung_server_gives_a_probe_reason_within_its_timeout_and_storage_errors_within_the_client_timeout(
    ganesha: Ganesha, client: NfsClient
) -> None:
    client.write_bytes("before", b"1")
    pid = ganesha.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        reason, took = _timed(lambda: probe(ganesha.target(), timeout=1.5))
        assert isinstance(reason, str) and "did not answer within 1.5s" in reason and took < 2.0, (reason, took)
        error, took = _timed(lambda: client.read_bytes("before"))
        assert isinstance(error, StorageError) and "timed out" in str(error) and took < 3.5, (error, took)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert client.read_bytes("before") == b"1"
    assert probe(ganesha.target()) is None
