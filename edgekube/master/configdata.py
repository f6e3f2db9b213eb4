"""What a pod reads from ConfigMaps, Secrets and the downward API, resolved for its node; called by master.dispatch.

Like the kubelet's configmap/secret/downwardAPI volume plugins and its env builder (kubelet_pods.go
makeEnvironmentVariables), but on the master: the node is sent the finished files and variables (model.config
ResolvedConfig), so agents never read ConfigMaps or Secrets, and a Secret reaches only the node that runs a pod
using it. A missing non-optional source makes the pod wait with the kubelet's words (`configmap "x" not found`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from edgekube.master.controllers.base import StoreView
from edgekube.model.config import WAIT_ENV, WAIT_VOLUME, ConfigMap, ProjectedFile, ResolvedConfig, Secret, encode_value
from edgekube.model.errors import NotFoundError
from edgekube.model.expansion import expand
from edgekube.model.lenient import decode_stored
from edgekube.model.names import check_env_name
from edgekube.model.pod import CONFIG_SOURCES, Container, EnvVar, Pod
from edgekube.model.podconfig import (
    ENV_FIELD_PATHS,
    VOLUME_FIELD_PATHS,
    DownwardAPIVolumeFile,
    KeyToPath,
    ObjectFieldSelector,
    ResourceFieldSelector,
    field_path_kind,
)
from edgekube.model.quantity import cpu_millis, memory_bytes
from edgekube.model.registryauth import RegistryCredential, docker_entries

#: What a pod's config was read from: ("ConfigMap" | "Secret", namespace, name).
Dep = tuple[str, str, str]


class Missing(Exception):
    """A non-optional source is missing: the pod waits (`reason`: FailedMount or CreateContainerConfigError)."""

    def __init__(self, message: str, reason: str, volume: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.volume = volume


def uses_config(pod: Mapping[str, Any]) -> bool:
    """True when the stored pod reads a ConfigMap, a Secret or the downward API (it needs a ResolvedConfig)."""
    spec = pod["spec"]
    if any(k in v for v in spec.get("volumes") or () for k in CONFIG_SOURCES) or spec.get("imagePullSecrets"):
        return True
    return any(
        c.get("envFrom") or any("valueFrom" in e or "$(" in str(e.get("value", "")) for e in c.get("env") or ())
        for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]
    )


def format_map(values: Mapping[str, str]) -> str:
    """Kubelet fieldpath.FormatMap: `key="value"` lines sorted by key, no newline after the last."""
    return "\n".join(f"{k}={json.dumps(values[k], ensure_ascii=False)}" for k in sorted(values))


class ConfigResolver:
    """Reads, through the master's cache, the ConfigMaps and Secrets a pod uses, and makes its files and env."""

    def __init__(self, store: StoreView) -> None:
        self.store = store

    def resolve(self, raw: Mapping[str, Any]) -> tuple[ResolvedConfig, frozenset[Dep]]:
        """The pod's ResolvedConfig, and every ConfigMap/Secret it names (found or not: one appearing re-resolves)."""
        pod = decode_stored(Pod, raw)  # stored before an upgrade's new rules: read back, not re-validated
        run = _Run(self.store, pod)
        try:
            files = {v.name: run.volume_files(v.name) for v in pod.spec.volumes if v.source_kind() in CONFIG_SOURCES}
            everyone = pod.spec.all_containers()
            env = {c.name: run.env(c) for c in everyone if c.env_from or any(_resolved(e) for e in c.env)}
        except Missing as exc:
            config = ResolvedConfig(waiting=str(exc), reason=exc.reason, volume=exc.volume, secret=run.secret)
            return config, frozenset(run.deps)
        credentials, missing = run.pull_credentials()
        config = ResolvedConfig(
            files=files, env=env, secret=run.secret, pull_credentials=credentials, pull_secrets_missing=missing
        )
        return config, frozenset(run.deps)


def _resolved(var: EnvVar) -> bool:
    """An env entry the master must work out: a valueFrom, or a value naming other variables (`$(NAME)`)."""
    return var.value_from is not None or "$(" in var.value


class _Run:
    """One resolution of one pod: what it read, and whether a Secret was among it."""

    def __init__(self, store: StoreView, pod: Pod) -> None:
        self.store = store
        self.pod = pod
        self.namespace = pod.metadata.namespace or "default"
        self.deps: set[Dep] = set()
        self.secret = False

    def _values(self, kind: str, name: str) -> dict[str, bytes] | None:
        self.deps.add((kind, self.namespace, name))
        if kind == "Secret":
            self.secret = True
        try:
            obj = self.store.peek(kind, self.namespace, name)
        except NotFoundError:
            return None
        if kind == "ConfigMap":
            return decode_stored(ConfigMap, obj).values()
        return decode_stored(Secret, obj).values()

    def pull_credentials(self) -> tuple[list[RegistryCredential] | None, list[str] | None]:
        """The registry entries of the pod's imagePullSecrets, and the names of those missing (None: none).

        As the kubelet's getPullSecretsForPod: an empty name is skipped, a missing Secret only noted, a Secret of
        another type gives nothing.
        """
        names = [ref.name for ref in self.pod.spec.image_pull_secrets or () if ref.name]
        credentials: list[RegistryCredential] = []
        missing: list[str] = []
        for name in names:
            self.deps.add(("Secret", self.namespace, name))
            self.secret = True
            try:
                secret = decode_stored(Secret, self.store.peek("Secret", self.namespace, name))
            except NotFoundError:
                missing.append(name)
                continue
            credentials += docker_entries(secret.type, secret.values())
        return credentials or None, missing or None

    # -- volumes ---------------------------------------------------------------------------------------------
    def volume_files(self, volume_name: str) -> list[ProjectedFile]:
        volume = next(v for v in self.pod.spec.volumes if v.name == volume_name)
        if volume.config_map is not None:
            s = volume.config_map
            return self._keys(volume_name, "ConfigMap", s.name, s.items, s.default_mode, s.optional)
        if volume.secret is not None:
            t = volume.secret
            return self._keys(volume_name, "Secret", t.secret_name, t.items, t.default_mode, t.optional)
        if volume.downward_api is not None:
            d = volume.downward_api
            return [self._downward(f, d.default_mode) for f in d.items]
        assert volume.projected is not None
        files: list[ProjectedFile] = []
        mode = volume.projected.default_mode
        for source in volume.projected.sources:
            if source.config_map is not None:
                c = source.config_map
                files += self._keys(volume_name, "ConfigMap", c.name, c.items, mode, c.optional)
            elif source.secret is not None:
                t2 = source.secret
                files += self._keys(volume_name, "Secret", t2.name, t2.items, mode, t2.optional)
            elif source.downward_api is not None:
                files += [self._downward(f, mode) for f in source.downward_api.items]
        return files

    def _keys(  # noqa: PLR0917 - the fields of one source
        self, volume: str, kind: str, name: str, items: list[KeyToPath], default_mode: int | None, optional: bool | None
    ) -> list[ProjectedFile]:
        """The kubelet's MakePayload: every key, or just `items` (a missing key is an error unless optional)."""
        values = self._values(kind, name)
        mode = 0o644 if default_mode is None else default_mode
        if values is None:
            if optional:
                return []
            raise Missing(f'{kind.lower()} "{name}" not found', WAIT_VOLUME, volume)
        if not items:
            return [ProjectedFile(path=k, mode=mode, data=encode_value(v)) for k, v in sorted(values.items())]
        out = []
        for item in items:
            if item.key not in values:
                if optional:
                    continue
                what = "configmap references non-existent config key" if kind == "ConfigMap" else (
                    "references non-existent secret key"
                )  # fmt: skip
                raise Missing(f"{what}: {item.key}", WAIT_VOLUME, volume)
            file_mode = mode if item.mode is None else item.mode
            out.append(ProjectedFile(path=item.path, mode=file_mode, data=encode_value(values[item.key])))
        return out

    def _downward(self, item: DownwardAPIVolumeFile, default_mode: int | None) -> ProjectedFile:
        if item.field_ref is not None:
            text = self._field(item.field_ref, VOLUME_FIELD_PATHS)
        else:
            assert item.resource_field_ref is not None
            text = self._resource(item.resource_field_ref, None)
        mode = item.mode if item.mode is not None else (0o644 if default_mode is None else default_mode)
        return ProjectedFile(path=item.path, mode=mode, data=encode_value(text.encode("utf-8")))

    def _field(self, ref: ObjectFieldSelector, allowed: tuple[str, ...]) -> str:
        meta = self.pod.metadata
        path, key = field_path_kind(ref.field_path, allowed)
        if path in ("labels", "annotations"):
            chosen: dict[str, str] = meta.labels if path == "labels" else meta.annotations
            return chosen.get(key, "")
        if path == "metadata.labels":
            return format_map(meta.labels)
        if path == "metadata.annotations":
            return format_map(meta.annotations)
        values = {
            "metadata.name": meta.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": meta.uid or "",
            "spec.nodeName": self.pod.spec.node_name or "",
            "spec.serviceAccountName": "default",
        }
        return values[path]

    def _resource(self, ref: ResourceFieldSelector, container: Container | None) -> str:
        """Kubelet resource.ExtractResourceValueByContainerName: rounded up by the divisor.

        No limit: the pod-level limit if the pod sets one (the downward API e2e "should provide default
        limits.cpu/memory from pod level resources"), else the node's allocatable.
        """
        name = ref.container_name or (container.name if container is not None else "")
        target = next((c for c in self.pod.spec.all_containers() if c.name == name), None)
        if target is None:
            raise Missing(f"resourceFieldRef: container {name!r} not found", WAIT_ENV)
        section, _, resource = ref.resource.partition(".")
        values = target.resources.limits if section == "limits" else target.resources.requests
        raw = values.get(resource)
        if raw is None and section == "requests" and resource in target.resources.limits:
            raw = target.resources.limits[resource]  # a limit alone implies an equal request
        if raw is None and section == "limits" and self.pod.spec.resources is not None:
            raw = self.pod.spec.resources.limits.get(resource)  # PodLevelResources: the pod's limit bounds it
        if raw is None and section == "limits":
            raw = self._allocatable(resource)
        if resource == "cpu":
            divisor = cpu_millis(ref.divisor if ref.divisor is not None else 1)
            return str(math.ceil(cpu_millis(raw or 0) / max(divisor, 1)))
        divisor = memory_bytes(ref.divisor if ref.divisor is not None else 1)
        return str(math.ceil(memory_bytes(raw or 0) / max(divisor, 1)))

    def _allocatable(self, resource: str) -> str | int | float | None:
        node = self.pod.spec.node_name
        if not node:
            return None
        try:
            status = self.store.peek("Node", "", node).get("status") or {}
        except NotFoundError:
            return None
        value = (status.get("allocatable") or status.get("capacity") or {}).get(resource)
        return value if isinstance(value, str | int | float) else None

    # -- env -------------------------------------------------------------------------------------------------
    def env(self, container: Container) -> dict[str, str]:
        """makeEnvironmentVariables: envFrom sources in order (invalid names skipped), then env, later wins."""
        out: dict[str, str] = {}
        for source in container.env_from or ():
            ref = source.config_map_ref or source.secret_ref
            assert ref is not None
            kind = "ConfigMap" if source.config_map_ref is not None else "Secret"
            values = self._values(kind, ref.name)
            if values is None:
                if ref.optional:
                    continue
                raise Missing(f'{kind.lower()} "{ref.name}" not found', WAIT_ENV)
            for key, raw in values.items():
                name = source.prefix + key
                try:
                    check_env_name(name, "")
                except ValueError:
                    continue  # the kubelet skips it (event InvalidEnvironmentVariableNames)
                out[name] = raw.decode("utf-8", "replace")
        for var in container.env:
            # A value may name the variables before it (kubelet: expansion.Expand over what is defined so far).
            value = self._env_value(container, expand(var.value, out), var.value_from)
            if value is not None:
                out[var.name] = value
        return out

    def _env_value(self, container: Container, value: str, source: Any) -> str | None:
        if source is None:
            return value
        if source.field_ref is not None:
            return self._field(source.field_ref, ENV_FIELD_PATHS)
        if source.resource_field_ref is not None:
            return self._resource(source.resource_field_ref, container)
        ref = source.config_map_key_ref or source.secret_key_ref
        kind = "ConfigMap" if source.config_map_key_ref is not None else "Secret"
        values = self._values(kind, ref.name)
        if values is None:
            if ref.optional:
                return None
            raise Missing(f'{kind.lower()} "{ref.name}" not found', WAIT_ENV)
        if ref.key not in values:
            if ref.optional:
                return None
            raise Missing(f"couldn't find key {ref.key} in {kind} {self.namespace}/{ref.name}", WAIT_ENV)
        return values[ref.key].decode("utf-8", "replace")
