"""NfsTarget: from a PV's nfs source and mountOptions to the libnfs URL, sub-paths, and the helper's SOURCE string."""

from __future__ import annotations

import urllib.parse

import pytest

from edgekube.model.errors import StorageError
from edgekube.nfs.mount import source_of
from edgekube.nfs.target import NfsTarget


def test_from_source_defaults_to_port_2049_and_normalizes_the_path() -> None:
    assert NfsTarget.from_source("10.0.0.5", "/export//pvc-1/") == NfsTarget("10.0.0.5", "/export/pvc-1", 2049)


@pytest.mark.parametrize(
    "options", [["port=20490"], ["nfsvers=4.1", "port=20490"], ["hard,port=20490,timeo=600"], [" port = 20490 "]]
)
def test_from_source_takes_the_port_from_mount_options_and_ignores_the_others(options: list[str]) -> None:
    assert NfsTarget.from_source("nas", "/export", options).port == 20490


def test_from_source_refuses_a_port_that_is_not_a_number() -> None:
    with pytest.raises(StorageError, match="port"):
        NfsTarget.from_source("nas", "/export", ["port=nfs"])


@pytest.mark.parametrize("path", ["export", "/export/../etc", ""])
def test_a_relative_path_or_one_with_dotdot_is_refused(path: str) -> None:
    with pytest.raises(StorageError):
        NfsTarget("nas", path)


@pytest.mark.parametrize("server", ["", "nas/x", "user@nas", "nas name"])
def test_a_server_that_is_no_host_name_is_refused(server: str) -> None:
    with pytest.raises(StorageError):
        NfsTarget(server, "/export")


def test_url_asks_libnfs_for_nfsv4_on_the_port_without_dircache_or_silent_reconnects() -> None:
    url = urllib.parse.urlsplit(NfsTarget("10.0.0.5", "/export/pvc 1", 20490).url())
    assert (url.scheme, url.netloc, urllib.parse.unquote(url.path)) == ("nfs", "10.0.0.5", "/export/pvc 1")
    assert urllib.parse.parse_qs(url.query) == {
        "version": ["4"], "nfsport": ["20490"], "dircache": ["0"], "autoreconnect": ["0"]
    }  # fmt: skip


def test_child_joins_relative_parts_and_keeps_server_and_port() -> None:
    base = NfsTarget("nas", "/export", 20490)
    assert base.child("pvc-1", "data/logs") == NfsTarget("nas", "/export/pvc-1/data/logs", 20490)


@pytest.mark.parametrize("part", ["/etc", "../x", "a/../../b", ".."])
def test_child_refuses_absolute_parts_and_dotdot(part: str) -> None:
    with pytest.raises(StorageError):
        NfsTarget("nas", "/export").child(part)


def test_address_names_the_port_only_when_it_is_not_2049() -> None:
    assert NfsTarget("10.0.0.5", "/x").address() == "10.0.0.5"
    assert NfsTarget("10.0.0.5", "/x", 20490).address() == "10.0.0.5:20490"


@pytest.mark.parametrize("target", [NfsTarget("10.0.0.5", "/export"), NfsTarget("nas.local", "/export/pvc 1/a", 20490)])
def test_the_helper_source_string_parses_back_to_the_same_target(target: NfsTarget) -> None:
    source = source_of(target)
    assert source.startswith("nfs://") and "#" not in source and " " not in source
    assert NfsTarget.parse(source) == target


@pytest.mark.parametrize("source", ["10.0.0.5:/export", "nfs:///export", "http://nas/export", "nfs://nas:port/x"])
def test_parse_refuses_what_is_not_an_nfs_url(source: str) -> None:
    with pytest.raises(StorageError):
        NfsTarget.parse(source)
