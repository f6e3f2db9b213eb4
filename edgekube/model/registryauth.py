"""Registry credentials from image pull Secrets, and which ones an image's pull tries; master (read) and agent (pull).

The kubelet's credentialprovider, pure: `docker_entries` reads a `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`)
or `kubernetes.io/dockercfg` (`.dockercfg`) Secret (other types give nothing, as MakeDockerKeyring ignores them);
`lookup` is BasicDockerKeyring.Lookup: every entry whose registry glob matches the image's repository (host parts
and port equal, path a prefix), most specific key first, else the Docker Hub entry for a Docker Hub image.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from pydantic import Field

from edgekube.model.base import K8sModel

DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
DOCKER_CFG = "kubernetes.io/dockercfg"
_DEFAULT_REGISTRY = "index.docker.io"


class RegistryCredential(K8sModel):
    """One registry entry of an image pull Secret (the key as written there), resolved by the master for one pod."""

    registry: str
    username: str = ""
    #: Never shown: kept out of repr, so no log line can carry it.
    password: str = Field(default="", repr=False)


class LocalObjectReference(K8sModel):
    """An object of the pod's namespace, by name (imagePullSecrets[])."""

    name: str = ""


def docker_entries(secret_type: str, values: Mapping[str, bytes]) -> list[RegistryCredential]:
    """The registry entries of one Secret, in the file's order; [] for another type or an unreadable file."""
    if secret_type == DOCKER_CONFIG_JSON:
        raw, nested = values.get(".dockerconfigjson"), True
    elif secret_type == DOCKER_CFG:
        raw, nested = values.get(".dockercfg"), False
    else:
        return []
    try:
        document = json.loads(raw or b"")
    except ValueError:
        return []
    registries = document.get("auths") if nested and isinstance(document, dict) else document
    if not isinstance(registries, dict):
        return []
    entries = []
    for registry, entry in registries.items():
        if not isinstance(entry, dict):
            continue
        username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
        auth = entry.get("auth")
        if auth:  # DockerConfigEntry.UnmarshalJSON: `auth` (base64 "user:password") wins
            try:
                username, _, password = base64.b64decode(str(auth)).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                continue
        entries.append(RegistryCredential(registry=str(registry), username=username, password=password))
    return entries


def repository(image: str) -> str:
    """The image's repository as the kubelet matches it (ParseImageName): Docker Hub made explicit, no tag/digest."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    first, _, rest = name.partition("/")
    if not rest:
        return f"docker.io/library/{first}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{name}"
    return name


def _key(registry: str) -> str:
    """BasicDockerKeyring.Add: the entry's key, scheme dropped and a trailing /v1/ or /v2/ cut."""
    value = registry if registry.startswith(("https://", "http://")) else f"https://{registry}"
    parsed = urlsplit(value)
    path = parsed.path
    for suffix in ("/v2/", "/v1/", "/v2", "/v1"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return parsed.netloc + path if path and path != "/" else parsed.netloc


def _split(url: str) -> tuple[list[str], str, str]:
    """(host parts, port, path) of a schemeless URL (credentialprovider.ParseSchemelessURL + SplitURL)."""
    parsed = urlsplit(f"https://{url}")
    host, _, port = parsed.netloc.partition(":")
    return host.split("."), port, parsed.path


def _matches(key: str, target: str) -> bool:
    """credentialprovider.URLsMatch: same port, as many host parts each matching its glob, path a prefix."""
    glob_host, glob_port, glob_path = _split(key)
    host, port, path = _split(target)
    if glob_port != port or len(glob_host) != len(host):
        return False
    if not all(fnmatch.fnmatchcase(part, pattern) for pattern, part in zip(glob_host, host, strict=True)):
        return False
    return path.startswith(glob_path)


def _docker_hub(repo: str) -> bool:
    """IsDefaultRegistryMatch."""
    first, _, rest = repo.partition("/")
    if not first:
        return False
    if not rest or first in ("docker.io", "index.docker.io"):
        return True
    return not any(c in first for c in ".:")


def lookup(image: str, credentials: Iterable[RegistryCredential]) -> list[RegistryCredential]:
    """The credentials a pull of `image` tries, in order (BasicDockerKeyring.Lookup); [] means an anonymous pull."""
    by_key: dict[str, list[RegistryCredential]] = {}
    for credential in credentials:
        by_key.setdefault(_key(credential.registry), []).append(credential)
    repo = repository(image)
    found = [c for key in sorted(by_key, reverse=True) if _matches(key, repo) for c in by_key[key]]
    if found:
        return found
    if _docker_hub(repo):
        return list(by_key.get(_DEFAULT_REGISTRY, []))
    return []
