"""Eviction signals from proc trees and statvfs, and the agent settings that configure node health (bad input)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgekube.agent.app import AgentConfig
from edgekube.agent.health.agent import reader_of
from edgekube.agent.health.pi import THROTTLED_SYSFS
from edgekube.agent.health.signals import Signal, SignalReader, filesystem, memory_available, pid_available
from edgekube.model.errors import ValidationError

MEMINFO = """\
MemTotal:        3884096 kB
MemFree:          161828 kB
MemAvailable:     102400 kB
Buffers:           61812 kB
"""


def proc_tree(
    root: Path, meminfo: str = MEMINFO, pid_max: str = "32768", loadavg: str = "0.10 0.20 0.30 2/412 9999"
) -> Path:
    (root / "sys" / "kernel").mkdir(parents=True)
    (root / "meminfo").write_text(meminfo)
    (root / "sys" / "kernel" / "pid_max").write_text(pid_max + "\n")
    (root / "loadavg").write_text(loadavg + "\n")
    return root


def test_memory_available_is_memavailable_out_of_memtotal_in_bytes(tmp_path: Path) -> None:
    amount = memory_available(proc_tree(tmp_path))
    assert amount is not None
    assert (amount.available, amount.capacity) == (100 * 1024 * 1024, 3884096 * 1024)


def test_a_meminfo_without_memavailable_reads_as_unknown(tmp_path: Path) -> None:
    assert memory_available(proc_tree(tmp_path, meminfo="MemTotal: 1000 kB\n")) is None
    assert memory_available(tmp_path / "missing") is None


def test_pid_available_is_pid_max_less_the_tasks_that_exist(tmp_path: Path) -> None:
    amount = pid_available(proc_tree(tmp_path))
    assert amount is not None and (amount.available, amount.capacity) == (32768 - 412, 32768)
    assert pid_available(proc_tree(tmp_path / "bad", loadavg="garbage")) is None


def test_filesystem_matches_statvfs(tmp_path: Path) -> None:
    found = filesystem(tmp_path)
    assert found is not None
    space, inodes = found
    st = os.statvfs(tmp_path)
    assert space.capacity == st.f_blocks * st.f_frsize and inodes.capacity == st.f_files
    assert 0 <= space.available <= space.capacity
    assert filesystem(tmp_path / "missing") is None


def test_the_reader_reads_every_tree_it_is_given(tmp_path: Path) -> None:
    proc = proc_tree(tmp_path / "proc")
    sys = tmp_path / "sys"
    (sys / THROTTLED_SYSFS).parent.mkdir(parents=True)
    (sys / THROTTLED_SYSFS).write_text("50005\n")
    zone = sys / "class" / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("61234\n")
    signals = SignalReader(proc, sys, tmp_path, None).read()
    assert set(signals.amounts) == {
        Signal.MEMORY_AVAILABLE, Signal.NODEFS_AVAILABLE, Signal.NODEFS_INODES_FREE, Signal.PID_AVAILABLE,
    }  # fmt: skip
    assert signals.temperature == pytest.approx(61.234)
    assert signals.throttle is not None and signals.throttle.raw == 0x50005
    assert SignalReader(proc, sys, tmp_path, None, pi=False).read().throttle is None


def test_agent_config_points_the_reader_at_its_trees(tmp_path: Path) -> None:
    config = AgentConfig(
        node_name="pi-1", proc_root=str(tmp_path / "p"), sys_root=str(tmp_path / "s"), nodefs_path=str(tmp_path),
        container_store="", thermal_throttling=False, under_voltage=False,
    )  # fmt: skip
    assert reader_of(config) == SignalReader(tmp_path / "p", tmp_path / "s", tmp_path, None, pi=False)


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ({"eviction_hard": "memory.available<"}, "eviction_hard: 'memory.available<': missing quantity after '<'"),
        ({"eviction_hard": "disk<1Gi"}, "eviction_hard: 'disk<1Gi': unknown signal 'disk'"),
        ({"health_check_interval": 0}, "health_check_interval: must be greater than 0"),
        ({"eviction_pressure_transition_period": -1}, "eviction_pressure_transition_period: must be greater than or"),
        ({"soc_temperature_limit": -5}, "soc_temperature_limit: must be greater than or equal to 0"),
    ],
)
def test_bad_health_settings_stop_the_agent_with_one_line_naming_the_setting(
    setting: dict[str, object], error: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        AgentConfig(node_name="pi-1", **setting)  # type: ignore[arg-type]
    assert error in str(caught.value)
    assert "\n" not in str(caught.value)


def test_agent_help_shows_the_eviction_defaults_percent_signs_and_all(capsys: pytest.CaptureFixture[str]) -> None:
    from edgekube.main import parser  # noqa: PLC0415

    with pytest.raises(SystemExit) as done:
        parser().parse_args(["agent", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--eviction-hard" in text and "nodefs.available<10%" in text.replace("% ", "%")


def test_a_config_file_sets_the_thresholds(tmp_path: Path) -> None:
    from edgekube.main import _build, _config_file, parser  # noqa: PLC0415

    path = tmp_path / "agent.toml"
    path.write_text('eviction_hard = "memory.available<1Gi,pid.available<5%"\nsoc_temperature_limit = 75\n')
    args = parser().parse_args(["agent", "--config", str(path)])
    config = _build(AgentConfig, args, _config_file(str(path)), node_name="pi-1")
    assert config.eviction_hard == "memory.available<1Gi,pid.available<5%"
    assert config.soc_temperature_limit == 75.0
