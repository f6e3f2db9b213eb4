"""Unit tests of `ekctl cp`: which side is the pod, unpacking an archive here (nothing lands outside the target),
and a round trip through the real master and an agent on FakeRuntime."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.cli.cmd_cp import pack, split_remote, unpack
from edgekube.model.errors import ValidationError
from tests.support.apiserver import ApiServer

POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: app, image: busybox}]}\n"


def test_a_colon_before_any_slash_names_a_pod() -> None:
    assert split_remote("web:/etc/hosts") == ("web", "/etc/hosts")
    assert split_remote("./a:b") is None and split_remote("/tmp/x") is None
    with pytest.raises(ValidationError, match="a path in the container is required"):
        split_remote("web:")


def test_unpack_places_the_top_entry_and_refuses_entries_outside_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    unpack(pack(src, "dir"), "/remote/dir", tmp_path / "copy")
    assert (tmp_path / "copy" / "f").read_text() == "x"
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"!"))
    with pytest.raises(ValidationError, match="would land outside the target"):
        unpack(evil.getvalue(), "/x", tmp_path / "y")
    assert not (tmp_path / "escape").exists()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(tmp_path / "cluster") as api:
        yield api


def test_cp_in_and_out_through_master_and_agent(server: ApiServer, tmp_path: Path) -> None:
    server.add_node("pi-1")
    (tmp_path / "pod.yaml").write_text(POD)
    assert server.ekctl("apply", "-f", str(tmp_path / "pod.yaml")) == 0
    (tmp_path / "note").write_text("hello")
    assert server.ekctl("cp", str(tmp_path / "note"), "web:/tmp/note.txt") == 0
    assert server.ekctl("cp", "web:/tmp/note.txt", str(tmp_path / "back")) == 0
    assert (tmp_path / "back").read_text() == "hello"
    assert server.ekctl("cp", str(tmp_path / "note"), str(tmp_path / "other")) == 1  # no pod side
