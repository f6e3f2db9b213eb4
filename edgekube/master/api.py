"""The master's API: MQTT requests (apply, get, list, delete, scale, label, annotate, cordon, drain) → the store.

Every request is validated completely before anything is written, and `handle` answers every failure. The rules
of the storage kinds (admission, immutable fields, protected deletes) are in master.storage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from edgekube.master import endpointslices, paging, services, storage
from edgekube.master.controllers.base import Binder
from edgekube.master.controllers.nodelifecycle import LIFECYCLE_TAINTS
from edgekube.master.controllers.owners import CONTROLLER_KINDS, controller_ref, without_owner
from edgekube.master.edits import cordoned, edit_map
from edgekube.master.eventlog import EventLog, ObjectRef
from edgekube.master.eventlog import list_key as events_list_key
from edgekube.model import generatename
from edgekube.model.config import check_update
from edgekube.model.errors import ConflictError, EdgekubeError, NotFoundError, ValidationError
from edgekube.model.fielderrors import invalid
from edgekube.model.labels import Selector, parse_selector
from edgekube.model.manifest import CLUSTER_SCOPED, load_manifests
from edgekube.model.serviceips import DEFAULT_SERVICE_CIDR, parse_cidr
from edgekube.model.types import Obj
from edgekube.model.wire import ApiRequest, ApiResponse, ErrorInfo, Outcome, Verb
from edgekube.store.protocol import StateStore

log = logging.getLogger(__name__)

STORAGE_KINDS = ("PersistentVolume", "PersistentVolumeClaim", "StorageClass")
#: Kinds whose whole content is top-level data (no spec): an update replaces it, bar the rules of config.check_update.
CONFIG_KINDS = ("ConfigMap", "Secret")
KINDS = (
    "Pod",
    "Node",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    *STORAGE_KINDS,
    *CONFIG_KINDS,
    "Event",
    "Service",
    "Endpoints",
    "EndpointSlice",
)
#: Kinds with spec.replicas and a metadata.generation that counts spec changes (observedGeneration follows it).
WORKLOAD_KINDS = (*CONTROLLER_KINDS, "Deployment")
_WRITABLE = ("Pod", "Node", *WORKLOAD_KINDS, *STORAGE_KINDS, *CONFIG_KINDS, "Service")
#: Kinds each verb works on (apply takes any kind the manifest loader knows).
VERB_KINDS: dict[Verb, tuple[str, ...]] = {
    Verb.GET: KINDS,
    Verb.LIST: KINDS,
    Verb.DELETE: _WRITABLE,
    Verb.SCALE: WORKLOAD_KINDS,
    Verb.LABEL: _WRITABLE,
    Verb.ANNOTATE: _WRITABLE,
    Verb.CORDON: ("Node",),
    Verb.UNCORDON: ("Node",),
    Verb.DRAIN: ("Node",),
}
NodeDecorator = Callable[[Obj], Obj]
# Spelled out here because the method named `list` hides the builtin inside the class body.
Objects = list[Obj]
Outcomes = list[Outcome]
#: apply's plan: (kind, namespace, name) -> ("create" | "update", object to write), in manifest order.
_Writes = dict[tuple[str, str, str], tuple[str, Obj]]
_COMPONENT = "edgekube-master"


class ApiStore(StateStore, Protocol):
    """The store the API works on (the master's CachedStore): a StateStore that also selects without copying."""

    def select(self, kind: str, namespace: str | None, selector: Selector) -> list[Obj]:
        """Objects of `kind` in `namespace` (None: all) matching `selector`, unsorted.

        Shared, not copied: the cache replaces objects on writes and never changes one in place, so they stay as
        they are while the answer is encoded (copying 10,000 pods cost more than encoding them).
        """
        ...


def _namespace_of(kind: str, namespace: str | None) -> str:
    return "" if kind in CLUSTER_SCOPED else (namespace or "default")


def _check_kind(kind: str | None, verb: Verb) -> str:
    allowed = VERB_KINDS[verb]
    if kind is None and allowed == ("Node",):
        return "Node"
    if kind not in allowed:
        scope = "" if allowed == KINDS else f" for verb {verb.value}"
        raise ValidationError(f"kind: {kind!r} is not supported{scope} (supported: {', '.join(allowed)})")
    return kind


def _name(req: ApiRequest) -> str:
    if not req.name:
        raise ValidationError(f"name: Required value for verb {req.verb.value}")
    return req.name


def _outcome(obj: Obj, action: str) -> Outcome:
    meta = obj["metadata"]
    return Outcome(kind=obj["kind"], namespace=meta.get("namespace") or "", name=meta["name"], action=action)


class Api:
    """Request handling over the store; `decorate_node` adds live conditions to Nodes, `events` are in memory."""

    def __init__(
        self,
        store: ApiStore,
        decorate_node: NodeDecorator,
        events: EventLog | None = None,
        binder: Binder | None = None,
        wall: Callable[[], float] = time.time,
        *,
        service_cidr: str = DEFAULT_SERVICE_CIDR,
    ) -> None:
        self.store = store
        #: Where Services' clusterIPs are allocated (`--service-cidr`; a bad value stops the master at start).
        self.service_cidr = str(parse_cidr(service_cidr))
        self.decorate_node = decorate_node
        self.events = events if events is not None else EventLog()
        self.binder = binder
        self._wall = wall

    def _now(self) -> str:
        return datetime.fromtimestamp(self._wall(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def handle(self, req: ApiRequest) -> ApiResponse:
        try:
            return self._handle(req)
        except Exception as exc:  # every failure becomes an answer, never a crash
            if not isinstance(exc, EdgekubeError):
                log.exception("request %s failed", req.verb)
            return ApiResponse(ok=False, error=ErrorInfo.of(exc))

    def _handle(self, req: ApiRequest) -> ApiResponse:
        verb = req.verb
        if verb is Verb.APPLY:
            return ApiResponse(ok=True, outcomes=self.apply(req.manifest or "", source="request"))
        if verb not in VERB_KINDS:
            raise ValidationError(f"verb: {verb.value!r} is not handled by the master API")
        kind = _check_kind(req.kind, verb)
        if verb is Verb.LIST:
            items = self.list(kind, req.namespace, req.selector, req.annotation_selector)
            cut = paging.page(items, _list_key(kind), limit=req.limit, token=req.continue_token)
            return ApiResponse(
                ok=True,
                items=cut.items,
                continue_token=cut.continue_token,
                remaining_item_count=cut.remaining if req.limit is not None else None,
            )
        if verb in (Verb.LABEL, Verb.ANNOTATE) and not req.name:
            outcomes = self.relabel_all(kind, req, annotations=verb is Verb.ANNOTATE)
            return ApiResponse(ok=True, outcomes=outcomes)
        name = _name(req)
        if verb is Verb.GET:
            return ApiResponse(ok=True, object=self.get(kind, req.namespace, name))
        if verb is Verb.DELETE:
            return ApiResponse(ok=True, outcomes=[self.delete(kind, req.namespace, name, cascade=req.cascade)])
        if verb is Verb.SCALE:
            if req.replicas is None:
                raise ValidationError("replicas: Required value for verb scale")
            obj, action = self.scale(kind, req.namespace, name, req.replicas)
        elif verb in (Verb.LABEL, Verb.ANNOTATE):
            obj, action = self.relabel(kind, req.namespace, name, req, annotations=verb is Verb.ANNOTATE)
        elif verb is Verb.DRAIN:
            obj, evicted = self.drain(name)
            return ApiResponse(ok=True, object=self.decorate_node(obj), outcomes=evicted)
        else:
            obj, action = self.cordon(name, verb is Verb.CORDON)
        shown = self.decorate_node(obj) if kind == "Node" else obj
        return ApiResponse(ok=True, object=shown, outcomes=[_outcome(obj, action)])

    # -- apply ---------------------------------------------------------------------------------------------
    def apply(self, text: str | bytes, *, source: str = "") -> list[Outcome]:
        """Create or update every object in a manifest; all documents are validated before any is stored."""
        documents = load_manifests(text, source=source)
        objects = [doc.obj.to_dict() for doc in documents]
        self._name_generated(objects)
        # Claims are checked against the classes and volumes stored and those of the same manifest.
        context = storage.Context.of(self.store, objects)
        # Plan every document first (a forbidden spec change is an error too), then write: all or nothing.
        writes: _Writes = {}
        outcomes = [self._plan_one(obj, writes, context) for obj in objects]
        new_pods = [obj for verb, obj in writes.values() if verb == "create" and obj["kind"] == "Pod"]
        bound = {id(p) for p in self.binder.bind_new(new_pods)} if self.binder is not None and new_pods else set()
        for verb, obj in writes.values():
            stored = (self.store.create if verb == "create" else self.store.update)(obj)
            if id(obj) in bound and self.binder is not None:
                self.binder.scheduled(stored)
        return outcomes

    def _name_generated(self, objects: list[Obj]) -> None:
        """Name each object that has only a generateName, as the API server does on create (never a taken name)."""
        named = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects}
        for obj in objects:
            meta = obj["metadata"]
            if meta["name"]:
                continue
            kind, namespace = obj["kind"], meta.get("namespace", "")

            def taken(name: str, kind: str = kind, namespace: str = namespace) -> bool:
                if (kind, namespace, name) in named:
                    return True
                try:
                    self.store.get(kind, namespace, name)
                except NotFoundError:
                    return False
                return True

            meta["name"] = generatename.fresh(meta["generateName"], taken)
            named.add((kind, namespace, meta["name"]))

    def _plan_one(self, obj: Obj, writes: _Writes, context: storage.Context) -> Outcome:
        kind, meta = obj["kind"], obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        obj.pop("status", None)
        for server_field in storage.SERVER_META:
            meta.pop(server_field, None)
        key = (kind, namespace, name)
        verb = "update"
        if key in writes:  # the same object twice in one manifest: the later document wins
            verb, current = writes[key]
        else:
            try:
                current = self.store.get(kind, namespace, name)
            except NotFoundError:
                if kind == "Pod":
                    obj["status"] = {"phase": "Pending"}
                if kind in WORKLOAD_KINDS:
                    meta["generation"] = 1
                if kind in STORAGE_KINDS:
                    obj = storage.admit_new(obj, context)
                if kind == "Service":
                    obj = services.admit_new(obj, self._services(writes), self.service_cidr)
                writes[key] = ("create", obj)
                return Outcome(kind=kind, namespace=namespace, name=name, action="created")
        merged = self._merge(kind, current, obj)
        if kind == "Service":
            merged = services.merge(current, obj, merged, self._services(writes))
        if merged == current:
            return Outcome(kind=kind, namespace=namespace, name=name, action="unchanged")
        writes[key] = (verb, merged)
        return Outcome(kind=kind, namespace=namespace, name=name, action="updated")

    def _services(self, writes: _Writes) -> list[Obj]:
        """Stored Services and those this apply writes: what holds clusterIPs and nodePorts."""
        planned = [obj for (kind, _, _), (_, obj) in writes.items() if kind == "Service"]
        keys = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in planned}
        stored = self.store.list("Service", None)
        return [*planned, *(o for o in stored if (o["metadata"]["namespace"], o["metadata"]["name"]) not in keys)]

    @staticmethod
    def _merge(kind: str, current: Obj, new: Obj) -> Obj:
        merged = {**current, "metadata": dict(current["metadata"])}
        merged["metadata"]["labels"] = new["metadata"].get("labels", {})
        merged["metadata"]["annotations"] = new["metadata"].get("annotations", {})
        if kind == "Pod":
            pod_spec = dict(new["spec"])
            bound = current["spec"].get("nodeName")
            if bound and not pod_spec.get("nodeName"):
                pod_spec["nodeName"] = bound
            if pod_spec != current["spec"]:
                raise ValidationError(
                    f"Pod {current['metadata']['namespace']}/{current['metadata']['name']}: spec: Forbidden: "
                    "pod updates may not change fields other than metadata.labels and metadata.annotations",
                    hint="delete the pod and apply it again (a ReplicationController does this for you)",
                )
            return merged
        if kind in STORAGE_KINDS:
            return storage.merge(current, new, merged)
        if kind in CONFIG_KINDS:
            check_update(current, new)
            top = {k: v for k, v in new.items() if k not in ("metadata", "status")}
            return {**top, "metadata": merged["metadata"]}
        spec: Obj = new["spec"] if "spec" in new else current.get("spec", {})
        if kind == "Node":
            # The node lifecycle controller's taints say what the master sees; a manifest cannot wish them away.
            kept = [t for t in (current.get("spec") or {}).get("taints") or () if t.get("key") in LIFECYCLE_TAINTS]
            given = [t for t in spec.get("taints") or () if t.get("key") not in LIFECYCLE_TAINTS]
            spec = {**spec, "taints": given + kept}
        if kind == "Deployment" and spec.get("selector") != (current.get("spec") or {}).get("selector"):
            where = f"Deployment {current['metadata']['namespace']}/{current['metadata']['name']}"
            # apps/v1: the registry's ValidateUpdate refuses a changed selector (its ReplicaSets would be orphaned).
            raise ValidationError(f"{where}: {invalid('spec.selector', spec.get('selector'), 'field is immutable')}")
        if kind in WORKLOAD_KINDS and spec != current.get("spec"):
            merged["metadata"]["generation"] = int(current["metadata"].get("generation") or 1) + 1
        merged["spec"] = spec
        return merged

    # -- reads ---------------------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str | None, name: str) -> Obj:
        if kind == "Event":
            return self.events.get(namespace or "default", name)
        if kind == "EndpointSlice":  # a view of the stored Endpoints (master.endpointslices)
            found = [s for s in self.list(kind, namespace, None) if s["metadata"]["name"] == name]
            if not found:
                raise NotFoundError(f"EndpointSlice {namespace or 'default'}/{name} not found")
            return found[0]
        obj = self.store.get(kind, _namespace_of(kind, namespace), name)
        return self.decorate_node(obj) if kind == "Node" else obj

    def list(
        self, kind: str, namespace: str | None, selector: str | None, annotation_selector: str | None = None
    ) -> Objects:
        sel = parse_selector(selector or "")
        by_annotations = parse_selector(annotation_selector) if annotation_selector else None
        if kind == "Event":
            found = self.events.list(namespace, sel)
            return found if by_annotations is None else _annotated(found, by_annotations)
        ns = None if kind in CLUSTER_SCOPED else namespace
        if kind == "EndpointSlice":
            views = endpointslices.all_slices(self.store.list("Endpoints", ns))
            items = [v for v in views if sel.matches(v["metadata"]["labels"])]
        else:
            items = self.store.select(kind, ns, sel)
        if by_annotations is not None:
            items = _annotated(items, by_annotations)
        items.sort(key=_list_key(kind))
        return [self.decorate_node(o) for o in items] if kind == "Node" else items

    # -- delete --------------------------------------------------------------------------------------------
    def delete(self, kind: str, namespace: str | None, name: str, *, cascade: str = "background") -> Outcome:
        """Delete an object; a controller's pods go with it (background) or stay, no longer owned (orphan)."""
        ns = _namespace_of(kind, namespace)
        if kind in CONTROLLER_KINDS:
            controller = self.store.get(kind, ns, name)
            uid = controller["metadata"]["uid"]
            owned = [p for p in self.store.list("Pod", ns) if (controller_ref(p) or {}).get("uid") == uid]
            if cascade == "orphan":
                # Owner references go first: should the master stop half way, the controller still owns them.
                for pod in owned:
                    self.store.update(without_owner(pod, uid))
                self.store.delete(kind, ns, name)
            else:
                self.store.delete(kind, ns, name)
                for pod in owned:
                    self.store.delete("Pod", ns, pod["metadata"]["name"])
            log.info("deleted %s %s/%s (cascade %s, %d pod(s))", kind, ns, name, cascade, len(owned))
        elif kind == "Deployment":
            self._delete_deployment(ns, name, cascade)
        elif kind in STORAGE_KINDS:
            storage.delete(self.store, kind, ns, name, now=self._now())
        else:
            self.store.delete(kind, ns, name)
        return Outcome(kind=kind, namespace=ns, name=name, action="deleted")

    def _delete_deployment(self, ns: str, name: str, cascade: str) -> None:
        """Delete a Deployment; orphan: its ReplicaSets lose their owner reference first.

        Background: the deployment controller's garbage pass deletes the ReplicaSets left without their owner, and
        the replication controller their pods.
        """
        uid = self.store.get("Deployment", ns, name)["metadata"]["uid"]
        if cascade == "orphan":
            for rs in self.store.list("ReplicaSet", ns):
                if (controller_ref(rs) or {}).get("uid") == uid:
                    self.store.update(without_owner(rs, uid))
        self.store.delete("Deployment", ns, name)

    # -- scale / label / annotate ------------------------------------------------------------------------------
    def scale(self, kind: str, namespace: str | None, name: str, replicas: int) -> tuple[Obj, str]:
        current = self.store.get(kind, _namespace_of(kind, namespace), name)
        if current["spec"].get("replicas") == replicas:
            return current, "unchanged"
        meta = {**current["metadata"], "generation": int(current["metadata"].get("generation") or 1) + 1}
        updated = self.store.update({**current, "metadata": meta, "spec": {**current["spec"], "replicas": replicas}})
        return updated, "updated"

    def relabel(
        self, kind: str, namespace: str | None, name: str, req: ApiRequest, *, annotations: bool
    ) -> tuple[Obj, str]:
        current = self.store.get(kind, _namespace_of(kind, namespace), name)
        changed = self._relabelled(current, req, annotations)
        if changed is None:
            return current, "unchanged"
        return self.store.update(changed), "updated"

    def relabel_all(self, kind: str, req: ApiRequest, *, annotations: bool) -> Outcomes:
        """label/annotate every object the request's selector matches (kubectl's `-l`), all checked first."""
        if req.selector is None:
            raise ValidationError(f"name: Required value for verb {req.verb.value} (or give a selector)")
        selector = parse_selector(req.selector)
        ns = None if kind in CLUSTER_SCOPED else (req.namespace or "default")
        targets = [o for o in self.store.list(kind, ns) if selector.matches(o["metadata"].get("labels", {}))]
        planned = [(o, self._relabelled(o, req, annotations)) for o in targets]
        outcomes = []
        for current, changed in planned:
            if changed is not None:
                self.store.update(changed)
            outcomes.append(_outcome(current, "unchanged" if changed is None else "updated"))
        return outcomes

    @staticmethod
    def _relabelled(current: Obj, req: ApiRequest, annotations: bool) -> Obj | None:
        field = "annotations" if annotations else "labels"
        before = current["metadata"].get(field) or {}
        after = edit_map(before, req.labels or {}, overwrite=req.overwrite, annotations=annotations)
        if after == before:
            return None
        return {**current, "metadata": {**current["metadata"], field: after}}

    # -- nodes ---------------------------------------------------------------------------------------------
    def cordon(self, name: str, unschedulable: bool) -> tuple[Obj, str]:
        current = self.store.get("Node", "", name)
        spec = cordoned(current.get("spec") or {}, unschedulable)
        if spec == (current.get("spec") or {}):
            return current, "unchanged"
        updated = self.store.update({**current, "spec": spec})
        reason = "NodeNotSchedulable" if unschedulable else "NodeSchedulable"
        self.events.record(updated, reason, f"Node {name} status is now: {reason}", component=_COMPONENT)
        log.info("node %s %s", name, "cordoned" if unschedulable else "uncordoned")
        return updated, "updated"

    def drain(self, name: str) -> tuple[Obj, Outcomes]:
        """Cordon the node, then evict every pod on it; their controllers recreate them elsewhere."""
        node, _ = self.cordon(name, True)
        evicted = []
        for pod in self.store.list("Pod", None):
            if pod["spec"].get("nodeName") != name:
                continue
            meta = pod["metadata"]
            try:
                self.store.delete("Pod", meta["namespace"], meta["name"], meta["resourceVersion"])
            except (NotFoundError, ConflictError) as exc:
                log.info("drain %s: skipped pod %s/%s: %s", name, meta["namespace"], meta["name"], exc)
                continue
            self.events.record(ObjectRef.of(pod), "Evicted", f"Evicted from node {name} by drain", component=_COMPONENT)
            evicted.append(Outcome(kind="Pod", namespace=meta["namespace"], name=meta["name"], action="deleted"))
        log.info("node %s drained: %d pod(s) evicted", name, len(evicted))
        return node, evicted


def _annotated(items: Objects, selector: Selector) -> Objects:
    """The objects whose annotations the selector matches (label selector grammar over annotation values)."""
    return [o for o in items if selector.matches(o["metadata"].get("annotations") or {})]


def _list_key(kind: str) -> Callable[[Obj], tuple[str, ...]]:
    """The order `Api.list` answers in; continue tokens name a place in it."""
    if kind == "Event":
        return events_list_key
    return lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
