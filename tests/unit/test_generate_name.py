"""metadata.generateName: validated as ValidateObjectMeta, named by the master on create, refused by `ekctl apply`."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.model import generatename
from edgekube.model.manifest import ManifestError, parse_object
from edgekube.model.pod import Pod
from tests.support.apiserver import ApiServer

Capture = pytest.CaptureFixture[str]
GENERATED = """\
apiVersion: v1
kind: Pod
metadata:
  generateName: {prefix}
spec:
  containers:
    - name: web
      image: busybox:1.36
"""


def pod_doc(metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "c", "image": "b"}]},
    }


def problems(metadata: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_object(pod_doc(metadata))
    return info.value.problems


def is_generated(name: str, prefix: str) -> bool:
    random_part = name[len(prefix) :]
    return name.startswith(prefix) and len(random_part) == 5 and set(random_part) <= set(generatename.ALPHABET)


# -- the model (apimachinery ValidateObjectMeta, names.SimpleNameGenerator) -----------------------------------------


def test_a_generate_name_stands_for_the_name() -> None:
    """ValidateObjectMeta: name or generateName; NameIsDNSSubdomain in prefix mode allows a trailing dash."""
    obj = parse_object(pod_doc({"generateName": "web-"}))
    assert isinstance(obj, Pod) and obj.metadata.name == "" and obj.metadata.generate_name == "web-"


def test_neither_name_nor_generate_name_is_the_kubernetes_required_error() -> None:
    """ValidateObjectMeta: `name: Required value: name or generateName is required`."""
    assert problems({}) == ["metadata.name: Required value: name or generateName is required"]


def test_a_generate_name_breaking_the_name_rule_is_invalid_and_shown_as_written() -> None:
    """ValidateObjectMeta: nameFn(generateName, prefix=true) errors are field.Invalid on metadata.generateName."""
    [problem] = problems({"generateName": "Web-"})
    assert problem.startswith('metadata.generateName: Invalid value: "Web-": a lowercase RFC 1123 subdomain')


def test_generated_names_are_the_prefix_cut_to_58_and_five_characters_of_kubernetes_alphabet() -> None:
    """SimpleNameGenerator: maxGeneratedNameLength 58, randomLength 5, utilrand's consonant-and-digit alphabet."""
    rng = random.Random(7)
    assert is_generated(generatename.generate("web-", rng), "web-")
    long = generatename.generate("x" * 70, rng)
    assert len(long) == 63 and is_generated(long, "x" * 58)


def test_a_generated_name_never_takes_one_in_use() -> None:
    first = generatename.generate("web-", random.Random(1))
    again = generatename.fresh("web-", lambda name: name == first, random.Random(1))
    assert again != first and is_generated(again, "web-")


# -- the master and ekctl --------------------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(tmp_path / "cluster") as api:
        yield api


def test_the_master_names_each_apply_of_a_generate_name_manifest_anew(server: ApiServer) -> None:
    """An MQTT apply creates: the API server's BeforeCreate names the object, and keeps generateName stored."""
    names = [o.name for _ in range(2) for o in server.master.api.apply(GENERATED.format(prefix="job-"))]
    assert len(set(names)) == 2 and all(is_generated(n, "job-") for n in names)
    stored = server.master.store.get("Pod", "default", names[0])
    assert stored["metadata"]["generateName"] == "job-" and stored["status"]["phase"] == "Pending"


def test_ekctl_create_makes_a_new_object_each_time_and_apply_refuses_as_kubectl(
    server: ApiServer, tmp_path: Path, capsys: Capture
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(GENERATED.format(prefix="job-"))
    assert server.ekctl("create", "-f", str(path)) == 0
    assert server.ekctl("create", "-f", str(path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith("pod/job-") and line.endswith(" created") for line in lines)
    assert len(server.master.store.objects("Pod")) == 2

    assert server.ekctl("apply", "-f", str(path)) == 1
    assert "from job-: cannot use generate name with apply" in capsys.readouterr().err
    assert server.ekctl("delete", "-f", str(path)) == 1
    assert "resource name may not be empty" in capsys.readouterr().err
    assert len(server.master.store.objects("Pod")) == 2


def test_ekctl_create_refuses_an_object_that_exists(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(GENERATED.replace("generateName: {prefix}", "name: web"))
    assert server.ekctl("create", "-f", str(path)) == 0
    assert capsys.readouterr().out == "pod/web created\n"
    assert server.ekctl("create", "-f", str(path)) == 1
    assert 'pods "web" already exists' in capsys.readouterr().err
