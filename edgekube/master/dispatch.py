"""Desired state per node: which pods a node must run, published retained only when the set really changed.

A pod with persistentVolumeClaim volumes carries, beside metadata and spec, the source of each claim's bound
volume (model.storage.RESOLVED_VOLUMES_KEY): agents never read claims or volumes. Every message also lists the
cluster's NFS servers, which each node probes and reports (the scheduler keeps pods off nodes that cannot reach
their storage).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgekube.master.configdata import ConfigResolver, uses_config
from edgekube.master.controllers.base import StoreView
from edgekube.master.controllers.volumes import facts
from edgekube.model import jsoncodec
from edgekube.model.config import CONFIG_KEY, WAIT_ENV, ResolvedConfig
from edgekube.model.errors import NotFoundError
from edgekube.model.storage import RESOLVED_VOLUMES_KEY, AccessMode, NfsServer, ResolvedVolume
from edgekube.model.taints import TAINT_NOT_READY, TAINT_UNREACHABLE
from edgekube.model.types import Obj
from edgekube.model.wire import MAX_PAYLOAD_BYTES, NodeDesired

log = logging.getLogger(__name__)

#: What a desired pod's volume sources were read from: ("claim", namespace, name) or ("volume", "", name).
Dep = tuple[str, str, str]
Server = tuple[str, int]

#: Metadata the agent needs; resourceVersion is left out so a status write does not look like a new desired state.
_META_KEYS = ("name", "namespace", "uid", "labels", "annotations")


def desired_pod(
    pod: Mapping[str, Any], volume_sources: Mapping[str, Obj] | None = None, config: Obj | None = None
) -> Obj:
    """The part of a stored pod an agent acts on: identity, labels and spec (never status), and its claims' volumes."""
    meta = pod["metadata"]
    desired = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {k: meta[k] for k in _META_KEYS if k in meta},
        "spec": pod["spec"],
    }
    if volume_sources:
        desired[RESOLVED_VOLUMES_KEY] = dict(volume_sources)
    if config is not None:
        desired[CONFIG_KEY] = config
    return desired


class VolumeResolver:
    """Reads, through the master's cache, the volume each of a pod's claims is bound to, and the cluster's servers."""

    def __init__(self, store: StoreView) -> None:
        self.store = store

    def resolve(self, pod: Mapping[str, Any]) -> tuple[dict[str, Obj], frozenset[Dep]]:
        """{volume name: ResolvedVolume dict} for the pod's bound claims, and what that was read from."""
        namespace = pod["metadata"].get("namespace") or "default"
        sources: dict[str, Obj] = {}
        deps: set[Dep] = set()
        for volume_name, claim_name, read_only in facts.pod_claims(pod):
            deps.add(("claim", namespace, claim_name))
            try:
                claim = self.store.peek("PersistentVolumeClaim", namespace, claim_name)
            except NotFoundError:
                continue
            bound_to = claim["spec"].get("volumeName")
            if not bound_to:
                continue
            deps.add(("volume", "", bound_to))
            try:
                volume = self.store.peek("PersistentVolume", "", bound_to)
            except NotFoundError:
                continue
            sources[volume_name] = resolved(claim, volume, read_only=read_only).to_dict()
        return sources, frozenset(deps)

    def servers(self) -> set[Server]:
        """(server, port) of every stored volume and NFS StorageClass."""
        return facts.cluster_servers(
            self.store.objects("PersistentVolume").values(), self.store.objects("StorageClass").values()
        )


def resolved(claim: Mapping[str, Any], volume: Mapping[str, Any], *, read_only: bool) -> ResolvedVolume:
    """What a node is told of one claim volume: read-only if the pod's source, the volume's nfs or its modes say so."""
    spec = volume["spec"]
    modes = list(spec.get("accessModes") or ())
    nfs = spec.get("nfs")
    read_only = read_only or bool((nfs or {}).get("readOnly")) or modes == [AccessMode.READ_ONLY_MANY.value]
    return ResolvedVolume.model_validate(
        {
            "claimName": claim["metadata"]["name"],
            "volumeName": volume["metadata"]["name"],
            "accessModes": list(claim["spec"].get("accessModes") or modes),
            "readOnly": read_only,
            "nfs": nfs,
            "hostPath": spec.get("hostPath"),
            "mountOptions": list(spec.get("mountOptions") or ()),
        }
    )


#: The most a pod with its resolved ConfigMaps/Secrets may take of its node's desired-state message (one MQTT
#: message of at most wire.MAX_PAYLOAD_BYTES, which agents refuse beyond): a pod over it waits, saying why.
CONFIG_BUDGET = MAX_PAYLOAD_BYTES // 2


def too_big(size: int) -> Obj:
    """The configData of a pod whose values do not fit its node's message: it waits with the reason."""
    why = (
        f"the ConfigMap/Secret values this pod uses take {size} bytes of its node's desired state, over the "
        f"{CONFIG_BUDGET}-byte share a pod may have"
    )
    return ResolvedConfig(waiting=why, reason=WAIT_ENV).to_dict()


def _fragment(desired: Obj) -> str:
    return jsoncodec.dumps(desired, sort_keys=True)


@dataclass
class _Entry:
    """One bound pod as its node is told about it."""

    node: str
    key: tuple[str, str]  # (namespace, name)
    resource_version: str | None
    fragment: str  # its JSON in the node's message: what "changed" is judged by
    desired: Obj
    pod: Mapping[str, Any]
    deps: frozenset[Dep] = frozenset()


@dataclass
class Dispatcher:
    """Keeps every node's desired set up to date as pods change; yields messages only for sets that changed.

    Incremental: `observe` is called for every pod write (the master's cache does it), so a pass costs
    O(changes), not O(pods). `epoch` is new per master process: agents accept any generation from a new
    epoch, and within an epoch only newer generations, so stale or duplicated retained messages cannot roll
    a node back.
    """

    epoch: str = field(default_factory=lambda: uuid.uuid4().hex)
    generation: int = 0
    #: The master's HA term (docs/ha.md), in every message: agents refuse a lower one than they accepted. 0: none.
    term: int = 0
    #: Resolves claim volumes and lists the stored NFS servers (None: pods go as they are, no servers listed).
    volumes: VolumeResolver | None = None
    #: Resolves the ConfigMaps, Secrets and downward API values pods use (None: pods go without them).
    config: ConfigResolver | None = None
    _sent: dict[str, frozenset[str]] = field(default_factory=dict)
    _entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    _nodes: dict[str, dict[tuple[str, str], _Entry]] = field(default_factory=dict)
    _dirty: set[str] = field(default_factory=set)
    #: Pods (bound ones) by what their volume sources were read from: re-read when that changes.
    _by_dep: dict[Dep, set[tuple[str, str]]] = field(default_factory=dict)
    #: The servers of pods' inline nfs volumes, per pod (bound or not).
    _inline: dict[tuple[str, str], frozenset[Server]] = field(default_factory=dict)
    _servers_sent: tuple[Server, ...] | None = None
    #: Nodes the master sees NotReady, with their lifecycle taint's key: told to the node (its LEDs show it).
    _not_ready: dict[str, str] = field(default_factory=dict)

    def observe(self, key: tuple[str, str], pod: Mapping[str, Any] | None, *, force: bool = False) -> None:
        """A pod was written (or deleted: None). Status-only writes change nothing a node is told.

        `force`: its claims or volumes changed, so its volume sources are read again.
        """
        if pod is None or pod["spec"].get("volumes"):
            self._note_inline(key, pod)
        old = self._entries.get(key)
        node = pod["spec"].get("nodeName") if pod is not None else None
        if pod is None or not node:
            if old is not None:
                self._drop(old)
            return
        version = pod["metadata"].get("resourceVersion")
        if not force and old is not None and old.resource_version == version and old.node == node:
            return
        sources: Mapping[str, Obj] | None = None
        deps: frozenset[Dep] = frozenset()
        if self.volumes is not None and pod["spec"].get("volumes"):
            sources, deps = self.volumes.resolve(pod)
        config: Obj | None = None
        if self.config is not None and uses_config(pod):
            resolved_config, config_deps = self.config.resolve(pod)
            config, deps = resolved_config.to_dict(), deps | config_deps
        desired = desired_pod(pod, sources, config)
        if config is not None and len(_fragment(desired)) > CONFIG_BUDGET:
            desired = desired_pod(pod, sources, too_big(len(_fragment(desired))))
        if old is not None and old.node == node and old.desired == desired:
            old.resource_version = version  # a status write: nothing the node is told changed
            old.pod = pod
            return
        fragment = _fragment(desired)
        if old is not None:
            if old.node == node and old.fragment == fragment:
                old.resource_version = version
                old.pod = pod
                return
            self._drop(old)
        entry = _Entry(node, key, version, fragment, desired, pod, deps)
        self._entries[key] = entry
        self._nodes.setdefault(node, {})[key] = entry
        for dep in deps:
            self._by_dep.setdefault(dep, set()).add(key)
        self._dirty.add(node)

    def _note_inline(self, key: tuple[str, str], pod: Mapping[str, Any] | None) -> None:
        servers = frozenset((s.server, s.port) for s in facts.inline_servers(pod)) if pod is not None else frozenset()
        if servers:
            self._inline[key] = servers
        else:
            self._inline.pop(key, None)

    def node_changed(self, key: tuple[str, str], node: Mapping[str, Any] | None) -> None:
        """A Node was written: a lifecycle taint added or removed changes what its node is told (`notReady`)."""
        name = key[1]
        taints = ((node or {}).get("spec") or {}).get("taints") or ()
        why = next((t["key"] for t in taints if t.get("key") in (TAINT_UNREACHABLE, TAINT_NOT_READY)), None)
        if why == self._not_ready.get(name):
            return
        if why is None:
            del self._not_ready[name]
        else:
            self._not_ready[name] = why
        self._dirty.add(name)

    def claim_changed(self, key: tuple[str, str], claim: Mapping[str, Any] | None) -> None:
        """A claim was written or deleted: its bound pods' volume sources are read again."""
        self._refresh(("claim", key[0], key[1]))

    def volume_changed(self, key: tuple[str, str], volume: Mapping[str, Any] | None) -> None:
        """A volume was written or deleted: the volume sources of the pods whose claims it serves are read again."""
        self._refresh(("volume", "", key[1]))

    def config_changed(self, key: tuple[str, str], obj: Mapping[str, Any] | None, *, kind: str) -> None:
        """A ConfigMap or Secret was written or deleted: the pods using it are resolved again (their files update)."""
        self._refresh((kind, key[0], key[1]))

    def _refresh(self, dep: Dep) -> None:
        for key in sorted(self._by_dep.get(dep, ())):
            entry = self._entries.get(key)
            if entry is not None:
                self.observe(key, entry.pod, force=True)

    def _drop(self, entry: _Entry) -> None:
        del self._entries[entry.key]
        self._nodes[entry.node].pop(entry.key, None)
        for dep in entry.deps:
            pods = self._by_dep.get(dep)
            if pods is not None:
                pods.discard(entry.key)
                if not pods:
                    del self._by_dep[dep]
        self._dirty.add(entry.node)

    def nfs_servers(self) -> tuple[Server, ...]:
        """Every NFS server of the cluster (volumes, NFS classes, inline volumes): sorted, each once."""
        servers: set[Server] = set().union(*self._inline.values()) if self._inline else set()
        if self.volumes is not None:
            servers |= self.volumes.servers()
        return tuple(sorted(servers))

    def flush(self, nodes: Iterable[str]) -> list[NodeDesired]:
        """Messages for every node whose set changed, and for known nodes never sent one (an empty set too)."""
        known = list(nodes)
        candidates = self._dirty | {n for n in known if n not in self._sent}
        self._dirty = set()
        servers = self.nfs_servers()
        if servers != self._servers_sent:  # every node probes every server: all are told again
            self._servers_sent = servers
            candidates |= set(known) | set(self._sent)
            self._sent = {}
        out = []
        for node in sorted(candidates):
            entries = self._nodes.get(node, {})
            digest = frozenset(e.fragment for e in entries.values())
            if node in self._not_ready:  # not JSON, so never equal to a pod's fragment
                digest |= {f"notReady={self._not_ready[node]}"}
            if self._sent.get(node) == digest:
                continue
            items = sorted(entries.values(), key=lambda e: e.key)
            out.append(self._message(node, [e.desired for e in items], digest, [e.fragment for e in items]))
        return out

    def _message(self, node: str, pods: list[Obj], digest: frozenset[str], fragments: list[str]) -> NodeDesired:
        self.generation += 1
        self._sent[node] = digest
        servers = [NfsServer(server=server, port=port) for server, port in self._servers_sent or ()]
        message = NodeDesired.prepared(
            node, self.generation, self.epoch, pods, fragments, nfs_servers=servers,
            not_ready=self._not_ready.get(node), term=self.term,
        )  # fmt: skip
        size = len(message.encode())
        if size > MAX_PAYLOAD_BYTES:
            log.error(
                "node %s: its desired state is %d bytes, over the %d-byte message limit: the node will refuse it "
                "(fewer pods there, or smaller ConfigMaps/Secrets)", node, size, MAX_PAYLOAD_BYTES,
            )  # fmt: skip
        return message

    def forget(self, node: str) -> None:
        """Force the next flush to resend this node's set (e.g. after the agent reconnects)."""
        self._sent.pop(node, None)
        self._dirty.add(node)

    def forget_all(self) -> None:
        """Resend every node's set (e.g. after a broker restart lost the retained messages)."""
        self._dirty |= set(self._sent) | set(self._nodes)
        self._sent.clear()
