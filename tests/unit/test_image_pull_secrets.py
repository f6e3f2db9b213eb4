"""imagePullSecrets: the Secrets' registry entries (kubelet credentialprovider), which an image's pull tries, the
master's resolution for the one node that runs the pod, the agent handing them to the runtime, and no leak.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.runtime.podman.images import auth_header
from edgekube.master.cache import CachedStore
from edgekube.master.configdata import ConfigResolver, uses_config
from edgekube.model.config import CONFIG_KEY, ResolvedConfig, Secret
from edgekube.model.pod import Pod
from edgekube.model.registryauth import (
    DOCKER_CFG,
    DOCKER_CONFIG_JSON,
    RegistryCredential,
    docker_entries,
    lookup,
    repository,
)
from edgekube.store.state import TinyStateStore
from tests.unit.test_config_resolution import apply
from tests.unit.test_volumes_agent import IMAGE, Node


def cred(registry: str, user: str = "u") -> RegistryCredential:
    return RegistryCredential(registry=registry, username=user, password=f"pw-{user}")


def dockerconfigjson(auths: dict[str, Any]) -> dict[str, bytes]:
    return {".dockerconfigjson": json.dumps({"auths": auths}).encode()}


# -- reading the Secrets -----------------------------------------------------------------------------------


def test_a_dockerconfigjson_entry_gives_its_username_and_password_and_auth_wins() -> None:
    """DockerConfigEntry.UnmarshalJSON: `auth` (base64 user:password) replaces username/password."""
    auth = base64.b64encode(b"robot:tok:en").decode()
    values = dockerconfigjson({
        "registry.example:5000": {"username": "alice", "password": "pw"},
        "https://index.docker.io/v1/": {"username": "x", "password": "y", "auth": auth},
    })  # fmt: skip
    assert docker_entries(DOCKER_CONFIG_JSON, values) == [
        RegistryCredential(registry="registry.example:5000", username="alice", password="pw"),
        RegistryCredential(registry="https://index.docker.io/v1/", username="robot", password="tok:en"),
    ]


def test_a_dockercfg_is_the_registry_map_itself() -> None:
    values = {".dockercfg": json.dumps({"registry.example": {"username": "bob", "password": "pw"}}).encode()}
    assert docker_entries(DOCKER_CFG, values) == [cred("registry.example", "bob").model_copy(update={"password": "pw"})]


@pytest.mark.parametrize(
    ("secret_type", "values"),
    [("Opaque", dockerconfigjson({"r": {"username": "u"}})), (DOCKER_CONFIG_JSON, {".dockerconfigjson": b"{"})],
    ids=["other-type", "unreadable"],
)
def test_another_type_or_an_unreadable_file_gives_no_entry(secret_type: str, values: dict[str, bytes]) -> None:
    """MakeDockerKeyring reads only the two docker types."""
    assert docker_entries(secret_type, values) == []


def test_a_dockerconfigjson_secret_that_is_not_json_is_invalid_without_showing_it() -> None:
    """ValidateSecret: `field.Invalid(dataPath.Key(".dockerconfigjson"), "<secret contents redacted>", err)`."""
    doc = {
        "metadata": {"name": "pull"},
        "type": DOCKER_CONFIG_JSON,
        "data": {".dockerconfigjson": base64.b64encode(b"user:s3cret").decode()},
    }
    with pytest.raises(ValueError) as caught:
        Secret.model_validate(doc)
    assert 'data[".dockerconfigjson"]: Invalid value: "<secret contents redacted>"' in str(caught.value)
    assert "s3cret" not in str(caught.value)


# -- which credentials an image's pull tries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "repo"),
    [
        ("busybox", "docker.io/library/busybox"),
        ("me/app:1", "docker.io/me/app"),
        ("registry.example:5000/team/app:1.2", "registry.example:5000/team/app"),
        ("localhost/app@sha256:abc", "localhost/app"),
    ],
)
def test_an_image_is_matched_by_its_repository_without_tag_or_digest(image: str, repo: str) -> None:
    """The kubelet looks credentials up for ParseImageName's repository (Docker Hub made explicit)."""
    assert repository(image) == repo


def test_the_most_specific_key_comes_first_then_the_rest_that_match() -> None:
    """BasicDockerKeyring: keys sorted in reverse, every matching one returned (tried in that order)."""
    general, team, other = cred("registry.example", "general"), cred("registry.example/team", "team"), cred("quay.io")
    assert lookup("registry.example/team/app:1", [general, other, team]) == [team, general]
    assert lookup("registry.example/else/app:1", [general, other, team]) == [general]


def test_the_port_must_match() -> None:
    """URLsMatch: `globURLport != targetURLport` is no match."""
    assert lookup("registry.example:5000/app", [cred("registry.example")]) == []
    assert lookup("registry.example/app", [cred("registry.example:5000")]) == []


def test_a_glob_matches_one_host_part_only() -> None:
    """URLsMatch: as many host parts, each matched with filepath.Match."""
    wildcard = cred("*.example")
    assert lookup("registry.example/app", [wildcard]) == [wildcard]
    assert lookup("a.registry.example/app", [wildcard]) == []


def test_a_scheme_and_a_v1_or_v2_suffix_are_ignored() -> None:
    entry = cred("https://registry.example/v2/")
    assert lookup("registry.example/app", [entry]) == [entry]


@pytest.mark.parametrize("image", ["busybox", "library/busybox", "me/app", "docker.io/me/app", "index.docker.io/me/a"])
def test_the_docker_hub_entry_serves_docker_hub_images(image: str) -> None:
    """The default registry entry (https://index.docker.io/v1/) for isDefaultRegistryMatch images."""
    hub = cred("https://index.docker.io/v1/")
    assert lookup(image, [hub]) == [hub]


def test_the_docker_hub_entry_does_not_serve_another_registry() -> None:
    assert lookup("quay.io/me/app", [cred("https://index.docker.io/v1/")]) == []


def test_the_pull_header_is_podmans_base64url_auth_config() -> None:
    header = auth_header(RegistryCredential(registry="r", username="alice", password="p@ss"))
    assert json.loads(base64.urlsafe_b64decode(header)) == {"username": "alice", "password": "p@ss"}


def test_a_credential_never_shows_its_password() -> None:
    assert "pw-u" not in repr(cred("r")) and "pw-u" not in str(cred("r"))


# -- the pod field --------------------------------------------------------------------------------------------


def test_image_pull_secrets_take_only_a_name_and_an_empty_one_is_accepted() -> None:
    """validateImagePullSecrets: "only name may be set"; an empty name is valid (the kubelet skips it)."""
    spec = {"containers": [{"name": "c", "image": "i"}], "imagePullSecrets": [{"name": "pull"}, {}]}
    pod = Pod.model_validate({"metadata": {"name": "p"}, "spec": spec})
    assert [r.name for r in pod.spec.image_pull_secrets or []] == ["pull", ""]
    spec["imagePullSecrets"] = [{"name": "pull", "namespace": "other"}]
    with pytest.raises(ValueError, match="namespace"):
        Pod.model_validate({"metadata": {"name": "p"}, "spec": spec})


# -- the master ---------------------------------------------------------------------------------------------------


@pytest.fixture
def store() -> Iterator[CachedStore]:
    with TinyStateStore(None) as s:
        yield CachedStore(s)


def _pull_secret(name: str, registry: str, user: str) -> dict[str, Any]:
    config = json.dumps({"auths": {registry: {"username": user, "password": f"pw-{user}"}}})
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": DOCKER_CONFIG_JSON,
            "stringData": {".dockerconfigjson": config}}  # fmt: skip


def _pod(*names: str) -> dict[str, Any]:
    spec = {"nodeName": "n1", "containers": [{"name": "app", "image": "registry.example/app:1"}],
            "imagePullSecrets": [{"name": n} for n in names]}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def test_the_master_resolves_every_pull_secrets_entries_in_order_and_notes_the_missing(store: CachedStore) -> None:
    apply(
        store,
        _pull_secret("a", "registry.example", "alice"),
        _pull_secret("b", "quay.io", "bob"),
        _pod("a", "gone", "b"),
    )
    stored = store.get("Pod", "default", "p")
    assert uses_config(stored)
    config, deps = ConfigResolver(store).resolve(stored)
    assert [(c.registry, c.username) for c in config.pull_credentials or []] == [
        ("registry.example", "alice"),
        ("quay.io", "bob"),
    ]
    assert config.pull_secrets_missing == ["gone"]
    assert config.secret, "the node must not keep it on disk"
    assert ("Secret", "default", "gone") in deps, "a pull Secret created later re-resolves the pod"


def test_a_pod_without_pull_secrets_resolves_none(store: CachedStore) -> None:
    apply(store, _pod())
    stored = store.get("Pod", "default", "p")
    assert not uses_config(stored)


# -- the agent ------------------------------------------------------------------------------------------------------


def test_the_agent_hands_the_credentials_to_the_runtime_and_warns_of_missing_secrets(tmp_path: Path) -> None:
    node = Node(tmp_path / "agent", config_volume_dir=tmp_path / "config")
    image = "registry.example/team/app:1"
    node.runtime.add_image(image)
    config = ResolvedConfig(
        secret=True,
        pull_credentials=[cred("registry.example/team", "team"), cred("quay.io", "other")],
        pull_secrets_missing=["gone"],
    )
    pod = {
        "metadata": {"name": "private", "namespace": "default", "uid": "uid-private"},
        "spec": {"containers": [{"name": "app", "image": image}], "imagePullSecrets": [{"name": "team-pull"}]},
        CONFIG_KEY: config.to_dict(),
    }
    try:
        node.want(pod)
        node.settle()
        assert node.runtime.engine.pull_credentials[image].username == "team"
        assert IMAGE not in node.runtime.engine.pull_credentials
        assert node.events("FailedToRetrieveImagePullSecret") == [
            "Unable to retrieve some image pull secrets (gone); attempting to pull the image may not succeed."
        ]
        assert "pw-team" not in json.dumps(node.agent.events.events())
    finally:
        node.agent.prober.stop()
