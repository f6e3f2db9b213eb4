"""Pi readings: get_throttled's documented bits from vcgencmd and sysfs, the SoC temperature from a thermal tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekube.agent.health import pi
from edgekube.agent.health.pi import (
    THROTTLED_SYSFS,
    ThrottleFlags,
    parse_sysfs,
    parse_vcgencmd,
    read_soc_temperature,
    read_throttle_flags,
)


@pytest.mark.parametrize(
    ("output", "now", "occurred"),
    [
        ("throttled=0x0", [], []),
        # The documented example: under-voltage and throttled now, both also since boot.
        ("throttled=0x50005", ["under-voltage", "throttled"], ["under-voltage", "throttling"]),
        # Under-voltage happened earlier and is over.
        ("throttled=0x50000", [], ["under-voltage", "throttling"]),
        ("throttled=0x80008", ["soft temperature limit active"], ["soft temperature limit"]),
        ("throttled=0x20002", ["arm frequency capped"], ["arm frequency capping"]),
        ("throttled=0xf000f\n", ["under-voltage", "arm frequency capped", "throttled", "soft temperature limit active"],
         ["under-voltage", "arm frequency capping", "throttling", "soft temperature limit"]),
    ],
)  # fmt: skip
def test_vcgencmd_output_decodes_to_the_documented_bits(output: str, now: list[str], occurred: list[str]) -> None:
    flags = parse_vcgencmd(output)
    assert flags.now() == now
    assert flags.occurred() == occurred


def test_each_flag_reads_its_own_bit() -> None:
    flags = ThrottleFlags(0x50005)
    assert (flags.under_voltage, flags.arm_frequency_capped, flags.throttled, flags.soft_temperature_limit) == (
        True, False, True, False,
    )  # fmt: skip
    assert (flags.under_voltage_occurred, flags.arm_frequency_capping_occurred) == (True, False)
    assert (flags.throttling_occurred, flags.soft_temperature_limit_occurred) == (True, False)
    assert flags.slowed
    assert not ThrottleFlags(0x50000).slowed
    assert str(flags) == "0x50005"


@pytest.mark.parametrize("output", ["", "throttled=", "throttled=0xZZ", 'error=1 error_msg="Command not registered"'])
def test_malformed_vcgencmd_output_is_an_error_naming_the_output(output: str) -> None:
    with pytest.raises(ValueError, match=r"vcgencmd get_throttled: .*expected 'throttled=0x<hex>'"):
        parse_vcgencmd(output)


def test_sysfs_holds_hex_without_prefix() -> None:
    assert parse_sysfs("50005\n").raw == 0x50005
    with pytest.raises(ValueError, match="get_throttled: 'nope': expected a hexadecimal number"):
        parse_sysfs("nope")


def test_flags_come_from_a_sys_tree_and_never_from_vcgencmd_there(tmp_path: Path) -> None:
    assert read_throttle_flags(tmp_path) is None  # nothing exposed, and a test tree never runs vcgencmd
    path = tmp_path / THROTTLED_SYSFS
    path.parent.mkdir(parents=True)
    path.write_text("80008\n")
    flags = read_throttle_flags(tmp_path)
    assert flags is not None and flags.soft_temperature_limit


def zone(root: Path, n: int, kind: str, millideg: str) -> None:
    path = root / "class" / "thermal" / f"thermal_zone{n}"
    path.mkdir(parents=True)
    (path / "type").write_text(kind + "\n")
    (path / "temp").write_text(millideg + "\n")


def test_soc_temperature_is_read_in_millidegrees(tmp_path: Path) -> None:
    assert read_soc_temperature(tmp_path) is None
    zone(tmp_path, 0, "cpu-thermal", "48312")
    assert read_soc_temperature(tmp_path) == pytest.approx(48.312)


def test_the_soc_zone_wins_over_lower_numbered_ones(tmp_path: Path) -> None:
    zone(tmp_path, 0, "acpitz", "30000")
    zone(tmp_path, 1, "x86_pkg_temp", "61000")
    zone(tmp_path, 10, "soc_thermal", "72500")
    assert read_soc_temperature(tmp_path) == pytest.approx(72.5)


def test_an_unreadable_zone_is_skipped(tmp_path: Path) -> None:
    zone(tmp_path, 0, "cpu-thermal", "garbage")
    zone(tmp_path, 1, "gpu-thermal", "-5000")
    assert read_soc_temperature(tmp_path) == pytest.approx(-5.0)


def fake_vcgencmd(bin_dir: Path, answer: str) -> None:
    script = bin_dir / "vcgencmd"
    script.write_text(f'#!/bin/sh\n[ "$1" = get_throttled ] && echo "{answer}"\n')
    script.chmod(0o755)


def test_without_sysfs_the_flags_come_from_vcgencmd_reused_for_a_few_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pi, "_vcgencmd_last", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    fake_vcgencmd(tmp_path, "throttled=0x50005")
    flags = read_throttle_flags(tmp_path / "sys", vcgencmd=True)
    assert flags is not None and flags.raw == 0x50005
    fake_vcgencmd(tmp_path, "throttled=0x0")
    again = read_throttle_flags(tmp_path / "sys", vcgencmd=True)
    assert again is not None and again.raw == 0x50005  # within VCGENCMD_TTL: not asked again
    monkeypatch.setattr(pi, "_vcgencmd_last", None)
    cleared = read_throttle_flags(tmp_path / "sys", vcgencmd=True)
    assert cleared is not None and cleared.raw == 0


def test_a_board_without_vcgencmd_reads_no_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pi, "_vcgencmd_last", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert read_throttle_flags(tmp_path, vcgencmd=True) is None
