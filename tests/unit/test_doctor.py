"""`edgekube doctor`'s checks on temp trees laid out like /proc, /sys, /dev and /run, and its report and exit status."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from edgekube.doctor import host, services
from edgekube.doctor.report import Settings, exit_status, render_json, render_text
from edgekube.doctor.result import Result, Status, failed, passed, warned


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


PI_CMDLINE = "console=serial0,115200 root=PARTUUID=1-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
V1_CGROUPS = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t3\t40\t1\n"


def test_cgroup_v2_with_memory_passes(tmp_path: Path) -> None:
    root = tree(tmp_path, {"sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n"})
    assert host.cgroup_memory(root).status is Status.PASS


def test_a_pi_kernel_without_the_memory_controller_fails_with_the_cmdline_fix(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "sys/fs/cgroup/cgroup.controllers": "cpuset cpu io pids\n",
            "proc/cmdline": "cgroup_disable=memory " + PI_CMDLINE,
        },
    )
    result = host.cgroup_memory(root)
    assert result.status is Status.FAIL
    assert "cgroup_disable=memory" in result.detail
    assert "cgroup_enable=memory cgroup_memory=1" in result.fix and "edgekube firmware apply" in result.fix


def test_a_hybrid_hierarchy_with_v1_memory_is_a_warning(tmp_path: Path) -> None:
    root = tree(tmp_path, {"proc/cgroups": V1_CGROUPS, "sys/fs/cgroup/memory/tasks": ""})
    assert host.cgroup_memory(root).status is Status.WARN
    disabled = tree(tmp_path / "off", {"proc/cgroups": V1_CGROUPS.replace("40\t1", "40\t0"), "sys/fs/cgroup/x": ""})
    assert host.cgroup_memory(disabled).status is Status.FAIL


def test_swap_in_use_fails_naming_the_swap_file(tmp_path: Path) -> None:
    header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    on = tree(tmp_path / "on", {"proc/swaps": header + "/var/swap  file  102396  0  -2\n"})
    off = tree(tmp_path / "off", {"proc/swaps": header})
    result = host.swap(on)
    assert (result.status, result.detail) == (Status.FAIL, "swap in use: /var/swap")
    assert "dphys-swapfile" in result.fix
    assert host.swap(off).status is Status.PASS


@pytest.mark.parametrize(
    ("kernel", "status"),
    [((0, 0x2001), Status.PASS), ((5, 0x0041), Status.FAIL), ((0, 0x0040), Status.FAIL), (None, Status.WARN)],
)
def test_the_clock_is_judged_by_the_kernels_ntp_state(
    tmp_path: Path, kernel: tuple[int, int] | None, status: Status
) -> None:
    assert host.clock(tmp_path, kernel=lambda: kernel).status is status


def test_timesyncd_s_flag_file_means_synchronised(tmp_path: Path) -> None:
    root = tree(tmp_path, {"run/systemd/timesync/synchronized": ""})
    assert host.clock(root, kernel=lambda: (5, 0x40)).status is Status.PASS


def test_adjtimex_reads_this_machines_clock_state() -> None:
    state = host.adjtimex()
    assert state is not None and 0 <= state[0] <= 5


def test_nfs_kernel_client_or_userspace_client(tmp_path: Path) -> None:
    kernel = tree(tmp_path / "k", {"proc/filesystems": "nodev\tsysfs\n\tnfs\n\tnfs4\n"})
    assert host.nfs_client(kernel, libnfs=lambda: None).status is Status.PASS
    fuse = tree(tmp_path / "u", {"proc/filesystems": "nodev\tfuse\n", "dev/fuse": ""})
    result = host.nfs_client(fuse, libnfs=lambda: "libnfs.so.13")
    assert (result.status, result.detail) == (
        Status.PASS,
        "userspace client: /dev/fuse and libnfs.so.13 (no kernel nfs4)",
    )
    none = tree(tmp_path / "n", {"proc/filesystems": "nodev\tfuse\n"})
    result = host.nfs_client(none, libnfs=lambda: None)
    assert result.status is Status.FAIL
    assert "/dev/fuse, libnfs missing" in result.detail and "nfs-common" in result.fix


def test_gpio_needs_a_chip_this_user_can_open(tmp_path: Path) -> None:
    assert host.gpio(tmp_path).status is Status.FAIL
    chip = tree(tmp_path, {"dev/gpiochip0": ""}) / "dev/gpiochip0"
    assert host.gpio(tmp_path) == passed("gpio", "GPIO access", "/dev/gpiochip0")
    chip.chmod(0o000)
    if not os.access(chip, os.W_OK):  # root opens anything: only an unprivileged run can see the refusal
        assert host.gpio(tmp_path).status is Status.FAIL


@pytest.mark.parametrize(("free", "status"), [(50, Status.PASS), (12, Status.WARN), (5, Status.FAIL)])
def test_free_space_thresholds_follow_the_kubelets_eviction(tmp_path: Path, free: int, status: Status) -> None:
    result = host.free_space(tmp_path, "root", usage=lambda path: (100 * 2**30, (100 - free) * 2**30, free * 2**30))
    assert result.status is status
    assert result.detail.startswith(f"{free}.0 GiB free of 100.0 GiB ({free}%)")


def test_free_space_of_a_state_dir_not_made_yet_measures_its_parent(tmp_path: Path) -> None:
    result = host.free_space(tmp_path / "var/lib/edgekube", "state")
    assert f"measured {tmp_path}" in result.detail


def mounts(line: str) -> dict[str, str]:
    return {"proc/self/mounts": "proc /proc proc rw 0 0\n" + line + "\n"}


def test_sd_card_root_with_noatime_and_a_young_card_passes(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {**mounts("/dev/mmcblk0p2 / ext4 rw,noatime 0 0"), "sys/block/mmcblk0/device/life_time": "0x01 0x02\n"},
    )
    result = host.sd_card(root)
    assert result.status is Status.PASS
    assert result.detail == "root on SD card /dev/mmcblk0p2; life time estimate 0x01 0x02 (10-20% of its life used)"


def test_a_worn_sd_card_fails_and_atime_is_a_hint(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {**mounts("/dev/mmcblk0p2 / ext4 rw,relatime 0 0"), "sys/block/mmcblk0/device/life_time": "0x0B 0x0A\n"},
    )
    result = host.sd_card(root)
    assert result.status is Status.FAIL
    assert "mounted without noatime" in result.detail and "estimated life time exceeded" in result.detail
    assert "replace the card" in result.fix and "noatime" in result.fix


def test_a_card_without_life_time_and_atime_mount_is_a_warning(tmp_path: Path) -> None:
    root = tree(tmp_path, mounts("/dev/mmcblk0p2 / ext4 rw,relatime 0 0"))
    result = host.sd_card(root)
    assert result.status is Status.WARN
    assert "reports no life time estimate" in result.detail


def test_a_root_on_an_ssd_is_not_an_sd_card(tmp_path: Path) -> None:
    root = tree(tmp_path, mounts("/dev/sda2 / ext4 rw,noatime 0 0"))
    assert host.sd_card(root) == passed("sd-card", "SD card health", "root is /dev/sda2, not an SD card")


def test_podman_socket_and_runtime_from_the_api_info() -> None:
    info: dict[str, Any] = {
        "version": {"Version": "4.3.1"},
        "host": {"ociRuntime": {"name": "crun", "path": "/usr/bin/crun", "version": "crun version 1.8.1\ncommit: x"}},
    }
    result, got = services.podman_socket("unix:///run/podman/podman.sock", get=lambda url, path: info)
    assert result == passed(
        "podman-socket", "Podman API socket", "unix:///run/podman/podman.sock answers (Podman 4.3.1)"
    )
    assert services.oci_runtime(got).detail == "crun (crun version 1.8.1) used by Podman"


def test_a_silent_socket_fails_and_the_runtime_falls_back_to_the_path() -> None:
    def refuse(url: str, path: str) -> Any:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    result, info = services.podman_socket("unix:///nowhere.sock", get=refuse)
    assert result.status is Status.FAIL and "podman.socket" in result.fix
    assert services.oci_runtime(info, which=lambda name: None).status is Status.FAIL
    assert services.oci_runtime(info, which=lambda name: f"/usr/bin/{name}").status is Status.WARN


def test_podman_missing_fails_with_the_install_fix() -> None:
    result = services.podman_binary(which=lambda name: None)
    assert result.status is Status.FAIL and "apt install podman" in result.fix


RESULTS = [
    passed("swap", "swap off", "no swap in use"),
    warned("sd-card", "SD card health", "root on SD card", "noatime"),
    failed("gpio", "GPIO access", "no /dev/gpiochip*", "add the user to gpio"),
]


@pytest.mark.parametrize(("results", "status"), [(RESULTS[:1], 0), (RESULTS[:2], 2), (RESULTS, 1), ([], 0)])
def test_exit_status_0_pass_1_failure_2_warnings_only(results: list[Result], status: int) -> None:
    assert exit_status(results) == status


def test_the_checklist_marks_each_check_and_follows_each_problem_with_its_fix() -> None:
    assert render_text(RESULTS, "edgekube doctor: node checks").splitlines() == [
        "edgekube doctor: node checks",
        "",
        "✓ swap off        no swap in use",
        "! SD card health  root on SD card",
        "                  fix: noatime",
        "✗ GPIO access     no /dev/gpiochip*",
        "                  fix: add the user to gpio",
        "",
        "1 passed, 1 failed, 1 warning(s)",
    ]


def test_the_json_report_lists_checks_summary_and_exit_status() -> None:
    doc = json.loads(render_json(RESULTS, Settings(role="master")))
    assert doc["role"] == "master"
    assert [c["check"] for c in doc["checks"]] == ["swap", "sd-card", "gpio"]
    assert doc["checks"][2] == {
        "check": "gpio", "title": "GPIO access", "status": "fail", "detail": "no /dev/gpiochip*",
        "fix": "add the user to gpio",
    }  # fmt: skip
    assert doc["summary"] == {"pass": 1, "warn": 1, "fail": 1}
    assert doc["exitStatus"] == 1
