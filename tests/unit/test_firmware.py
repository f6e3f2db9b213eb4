"""`edgekube firmware apply` on temporary boot partitions laid out like Raspberry Pi OS bookworm's /boot/firmware."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
import yaml

from edgekube.firmware.apply import EXIT_OK, EXIT_WOULD_CHANGE, apply, packaged_fragment
from edgekube.firmware.bootfiles import BEGIN, END, CmdlineFragment, merge_cmdline, merge_config
from edgekube.main import main
from edgekube.model.errors import ValidationError

CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet "
    "splash plymouth.ignore-serial-consoles\n"
)
CONFIG = """# For more options and information see
# http://rptl.io/configtxt
dtparam=audio=on
camera_auto_detect=1
dtoverlay=vc4-kms-v3d
arm_64bit=1

[cm4]
otg_mode=1

[all]
"""
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    boot = tmp_path / "firmware"
    boot.mkdir()
    (boot / "cmdline.txt").write_text(CMDLINE)
    (boot / "config.txt").write_text(CONFIG)
    return boot


def snapshot(boot: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(boot.iterdir())}


def run(boot: Path, *flags: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = apply(boot, dry_run="--dry-run" in flags, out=lines.append)
    return code, "\n".join(lines).splitlines()


def test_apply_merges_the_settings_and_backs_up_the_originals(boot: Path) -> None:
    code, out = run(boot)
    assert code == EXIT_OK
    assert out[-1].startswith(f"changed: {boot / 'config.txt'}, {boot / 'cmdline.txt'}")
    cmdline = (boot / "cmdline.txt").read_text()
    assert cmdline == CMDLINE.rstrip("\n") + " cgroup_enable=memory cgroup_memory=1 cgroup_enable=cpuset\n"
    config = (boot / "config.txt").read_text()
    assert config.startswith(CONFIG)
    block = config[len(CONFIG) :].splitlines()
    assert block[:3] == ["", BEGIN, "[all]"]  # [all]: the settings hold for every board, whatever section came before
    assert "dtparam=watchdog=on" in block and "gpu_mem=16" in block and "#dtparam=act_led_trigger=heartbeat" in block
    assert block[-1] == END
    assert (boot / "cmdline.txt.edgekube-bak").read_text() == CMDLINE
    assert (boot / "config.txt.edgekube-bak").read_text() == CONFIG


def test_a_second_apply_changes_nothing_and_makes_no_new_backup(boot: Path) -> None:
    run(boot)
    before = snapshot(boot)
    assert run(boot) == (EXIT_OK, ["unchanged"])
    assert snapshot(boot) == before
    assert run(boot, "--dry-run") == (EXIT_OK, ["unchanged"])


def test_dry_run_prints_the_diff_and_changes_nothing(boot: Path) -> None:
    before = snapshot(boot)
    code, out = run(boot, "--dry-run")
    assert code == EXIT_WOULD_CHANGE
    assert f"--- {boot / 'cmdline.txt'}" in out and f"+++ {boot / 'config.txt'} (edgekube)" in out
    assert "+gpu_mem=16" in out
    assert snapshot(boot) == before


def test_the_block_is_replaced_not_duplicated_and_the_first_backup_is_kept(boot: Path) -> None:
    run(boot)
    edited = (boot / "config.txt").read_text().replace("gpu_mem=16", "gpu_mem=256") + "dtparam=i2c_arm=on\n"
    (boot / "config.txt").write_text(edited)
    code, _ = run(boot)
    config = (boot / "config.txt").read_text()
    assert code == EXIT_OK
    assert config.count(BEGIN) == 1 and config.count("gpu_mem=") == 1 and "gpu_mem=16" in config
    assert config.endswith("dtparam=i2c_arm=on\n")  # what follows the block is kept
    assert (boot / "config.txt.edgekube-bak").read_text() == CONFIG


def test_cmdline_stays_one_line_keeping_the_other_tokens_in_order() -> None:
    fragment = CmdlineFragment.parse("# c\ncgroup_enable=memory cgroup_memory=1\n-cgroup_disable=memory\nquiet\n")
    line = merge_cmdline("root=/dev/mmcblk0p2 cgroup_disable=memory quiet rootwait\n", fragment)
    assert line == "root=/dev/mmcblk0p2 quiet rootwait cgroup_enable=memory cgroup_memory=1\n"
    assert merge_cmdline(line, fragment) == line
    assert merge_cmdline("root=/dev/sda2", fragment) == "root=/dev/sda2 cgroup_enable=memory cgroup_memory=1 quiet"


@pytest.mark.parametrize(
    ("cmdline", "error"),
    [
        ("root=/dev/sda2\nquiet\n", "cmdline.txt: 2 lines; the firmware reads only the first, so it must be one line"),
        ("\n", "cmdline.txt: empty"),
    ],
)
def test_a_bad_cmdline_is_refused_and_nothing_is_written(boot: Path, cmdline: str, error: str) -> None:
    (boot / "cmdline.txt").write_text(cmdline)
    before = snapshot(boot)
    with pytest.raises(ValidationError, match="^" + error):
        run(boot)
    assert snapshot(boot) == before


def test_a_half_block_in_config_is_refused() -> None:
    with pytest.raises(ValidationError, match="has no matching marker"):
        merge_config(f"arm_64bit=1\n{BEGIN}\ngpu_mem=16\n", "gpu_mem=16\n")
    with pytest.raises(ValidationError, match="2 edgekube blocks"):
        merge_config(f"{BEGIN}\n{END}\n{BEGIN}\n{END}\n", "gpu_mem=16\n")


def test_the_command_explains_a_missing_boot_dir_or_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["firmware", "apply", "--boot", str(tmp_path / "nope")]) == 1
    assert f"error: --boot {tmp_path / 'nope'}: no such directory" in capsys.readouterr().err
    (tmp_path / "cmdline.txt").write_text(CMDLINE)
    assert main(["firmware", "apply", "--boot", str(tmp_path)]) == 1
    assert "no config.txt; is" in capsys.readouterr().err


def test_settings_outside_the_block_are_pointed_out(boot: Path) -> None:
    (boot / "config.txt").write_text(CONFIG + "gpu_mem=128\n")
    _, out = run(boot)
    assert out[0] == "note: config.txt line 12: gpu_mem=128 (the edgekube block sets gpu_mem later)"


def test_the_repositorys_firmware_files_are_the_packaged_ones() -> None:
    for name in ("config.txt", "cmdline.txt"):
        assert (REPO / "firmware" / name).read_text() == packaged_fragment(name)


def _render_role_fragments(into: Path, **overrides: object) -> None:
    """The common role's firmware templates rendered with its defaults (as Ansible would, Jinja2 + `bool`)."""
    role = REPO / "ansible" / "roles" / "common"
    variables = {**yaml.safe_load((role / "defaults" / "main.yml").read_text()), **overrides}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(role / "templates"), keep_trailing_newline=True)
    env.filters["bool"] = lambda v: v if isinstance(v, bool) else str(v).lower() in {"true", "yes", "1", "on"}
    into.mkdir()
    for name in ("config.txt", "cmdline.txt"):
        (into / name).write_text(env.get_template(f"firmware-{name}.j2").render(**variables))


def test_the_ansible_roles_fragments_apply_once_and_then_leave_the_boot_partition_unchanged(
    boot: Path, tmp_path: Path
) -> None:
    """tasks/firmware.yml: dry run (2 = something to change), apply, and the next play's dry run says unchanged."""
    fragments = tmp_path / "fragments"
    _render_role_fragments(fragments, edgekube_boot_config_lines=["dtparam=act_led_trigger=heartbeat"])
    assert apply(boot, dry_run=True, fragments=fragments, out=lambda _: None) == EXIT_WOULD_CHANGE
    assert apply(boot, fragments=fragments, out=lambda _: None) == EXIT_OK
    cmdline = (boot / "cmdline.txt").read_text()
    assert cmdline.count("\n") == 1 and cmdline.rstrip("\n").endswith(
        "cgroup_enable=memory cgroup_memory=1 cgroup_enable=cpuset"
    )
    block = (boot / "config.txt").read_text().split(BEGIN, 1)[1].split(END, 1)[0]
    assert [line for line in block.splitlines() if line and not line.startswith("#")] == [
        "[all]", "dtparam=watchdog=on", "gpu_mem=16", "dtparam=act_led_trigger=heartbeat",
    ]  # fmt: skip
    assert apply(boot, dry_run=True, fragments=fragments, out=lambda _: None) == EXIT_OK
