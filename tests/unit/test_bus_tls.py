"""TLS client files are checked before connecting: each problem is one BusError naming the file, with a hint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.tls import TlsFiles
from edgekube.local.pki import LocalPki
from edgekube.model.errors import BusError
from edgekube.security.ca import Role


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPki:
    return LocalPki(tmp_path_factory.mktemp("pki")).ensure({"node-1": Role.NODE, "node-2": Role.NODE})


def test_good_files_make_a_context_that_checks_the_brokers_name(pki: LocalPki) -> None:
    assert pki.files("node-1").context().check_hostname


def test_a_missing_file_is_named(pki: LocalPki, tmp_path: Path) -> None:
    files = pki.files("node-1")
    with pytest.raises(BusError, match=f"TLS certificate {tmp_path}/nope.crt: no such file") as info:
        TlsFiles(files.ca, str(tmp_path / "nope.crt"), files.key).context()
    assert "edgekube ca issue" in info.value.hint


def test_a_key_of_another_certificate_is_refused(pki: LocalPki) -> None:
    one, two = pki.files("node-1"), pki.files("node-2")
    with pytest.raises(BusError, match="does not belong to the certificate"):
        TlsFiles(one.ca, one.cert, two.key).context()


def test_a_ca_file_that_is_not_pem_is_refused(pki: LocalPki, tmp_path: Path) -> None:
    junk = tmp_path / "ca.crt"
    junk.write_text("hello\n")
    with pytest.raises(BusError, match="not a PEM certificate"):
        TlsFiles(str(junk)).context()


def test_a_certificate_without_its_key_is_refused(pki: LocalPki) -> None:
    files = pki.files("node-1")
    with pytest.raises(BusError, match="without its key"):
        TlsFiles(files.ca, files.cert, "").context()
    with pytest.raises(BusError, match="without the CA file"):
        TlsFiles("", files.cert, files.key).context()


def test_a_world_readable_key_is_refused_and_a_group_readable_one_accepted(pki: LocalPki, tmp_path: Path) -> None:
    files = pki.files("node-1")
    key = tmp_path / "k.key"
    shutil.copy(files.key, key)
    key.chmod(0o604)
    with pytest.raises(BusError, match=r"other users can read or write it \(mode 0604\)"):
        TlsFiles(files.ca, files.cert, str(key)).context()
    key.chmod(0o640)
    TlsFiles(files.ca, files.cert, str(key)).context()


def test_the_bus_refuses_bad_files_when_built_before_any_thread_starts(pki: LocalPki, tmp_path: Path) -> None:
    with pytest.raises(BusError, match="no such file"):
        PahoBus(BusConfig(tls_ca=str(tmp_path / "missing.crt")))
