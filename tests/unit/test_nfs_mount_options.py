"""edgekube-nfs-mount's -o options: its own are taken, FUSE's passed on, mount(8)'s dropped, the rest set aside."""

from __future__ import annotations

import pytest

from edgekube.model.errors import StorageError
from edgekube.nfs.mount import MountOptions


def test_the_helpers_own_options_are_read_from_any_number_of_o_groups() -> None:
    options = MountOptions(["ro,port=20490,timeout=2.5", "keepalive=0,uid=1000,gid=100,log=/tmp/m.log,debug"])
    assert options.read_only and options.port == 20490 and options.timeout == 2.5 and options.keepalive == 0
    assert (options.uid, options.gid, options.log, options.debug) == (1000, 100, "/tmp/m.log", True)
    assert options.fuse == {} and options.ignored == []


def test_defaults_are_read_write_5s_timeout_and_5s_keepalive_with_the_helpers_own_credentials() -> None:
    options = MountOptions([])
    assert (options.read_only, options.port, options.timeout, options.keepalive) == (False, None, 5.0, 5.0)
    assert (options.uid, options.gid, options.log) == (None, None, None)


def test_the_last_of_ro_and_rw_wins() -> None:
    assert not MountOptions(["ro,rw"]).read_only
    assert MountOptions(["rw", "ro"]).read_only


def test_fuse_mount_options_are_passed_on_and_mounts_own_words_dropped() -> None:
    options = MountOptions(["rw,nosuid,nodev,dev,suid,noexec,allow_other,max_read=65536,_netdev,nofail,x-systemd.a=b"])
    assert options.fuse == {"nosuid": True, "nodev": True, "dev": True, "suid": True, "noexec": True,
                            "allow_other": True, "max_read": "65536"}  # fmt: skip
    assert options.ignored == []


def test_unknown_options_are_set_aside_to_be_logged_not_passed_to_fuse() -> None:
    options = MountOptions(["vers=4.1,hard,nosuid"])
    assert options.ignored == ["vers=4.1", "hard"] and options.fuse == {"nosuid": True}


@pytest.mark.parametrize("option", ["port=nfs", "timeout=soon", "uid=root"])
def test_a_number_option_that_is_not_a_number_is_refused_naming_it(option: str) -> None:
    with pytest.raises(StorageError, match=option):
        MountOptions([option])
