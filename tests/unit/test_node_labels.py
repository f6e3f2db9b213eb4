"""The agent's well-known node labels: hostname, arch, os, and `edgekube.io/model` from the device tree.

The device tree is a temp dir laid out like / (the root is injectable).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekube.agent import hostinfo
from edgekube.agent.events import EventRecorder
from edgekube.agent.report import StatusReporter
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.model.names import NodeName


def board(root: Path, model: str, where: str = "proc/device-tree/model") -> Path:
    path = root / where
    path.parent.mkdir(parents=True)
    path.write_bytes(model.encode() + b"\x00")  # the device tree's strings end in NUL
    return root


@pytest.mark.parametrize(
    ("model", "label"),
    [
        ("Raspberry Pi 4 Model B Rev 1.4", "pi4b"),
        ("Raspberry Pi 5 Model B Rev 1.0", "pi5"),
        ("Raspberry Pi 3 Model B Plus Rev 1.3", "pi3bplus"),
        ("Raspberry Pi 3 Model B Rev 1.2", "pi3b"),
        ("Raspberry Pi Zero 2 W Rev 1.0", "pizero2w"),
        ("Raspberry Pi Zero W Rev 1.1", "pizerow"),
        ("Raspberry Pi 400 Rev 1.0", "pi400"),
        ("Raspberry Pi 500 Rev 1.0", "pi500"),
        ("Raspberry Pi Compute Module 4 Rev 1.0", "cm4"),
        ("Raspberry Pi Model B Plus Rev 1.2", "pi1bplus"),
        ("Raspberry Pi 6 Model C Rev 1.0", "pi6modelc"),  # unknown yet: the model string, as a label value
    ],
)
def test_pi_model_label_from_the_device_tree(tmp_path: Path, model: str, label: str) -> None:
    assert hostinfo.model_labels(board(tmp_path, model)) == {"edgekube.io/model": label}


def test_the_firmware_device_tree_path_is_read_when_proc_has_none(tmp_path: Path) -> None:
    root = board(tmp_path, "Raspberry Pi 4 Model B Rev 1.5", "sys/firmware/devicetree/base/model")
    assert hostinfo.pi_model(root) == "pi4b"


@pytest.mark.parametrize("model", ["", "Generic DT based system", "Hardkernel ODROID-N2Plus"])
def test_no_model_label_off_a_raspberry_pi(tmp_path: Path, model: str) -> None:
    root = board(tmp_path, model) if model else tmp_path
    assert hostinfo.model_labels(root) == {}


def test_the_node_object_carries_the_well_known_labels_and_user_labels_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostinfo, "model_labels", lambda: {"edgekube.io/model": "pi4b"})
    monkeypatch.setattr(hostinfo, "architecture", lambda: "arm64")
    reporter = StatusReporter(
        NodeName("pi-1"),
        "boot",
        FakeRuntime(NodeName("pi-1")),
        EventRecorder("pi-1"),
        labels={"edgekube.io/model": "pi4b-8g", "edgekube.io/ram-gb": "8"},
        max_pods=10,
        report_interval=10.0,
    )
    assert reporter._host_object()["metadata"]["labels"] == {
        "kubernetes.io/hostname": "pi-1",
        "kubernetes.io/arch": "arm64",
        "kubernetes.io/os": "linux",
        "edgekube.io/model": "pi4b-8g",  # the user's label, not the board's
        "edgekube.io/ram-gb": "8",
    }
