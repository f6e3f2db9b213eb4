"""The master's API: apply/get/list/delete requests (from MQTT) → validated objects in the state store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from edgekube.model.errors import ConflictError, EdgekubeError, NotFoundError, ValidationError
from edgekube.model.labels import parse_selector
from edgekube.model.manifest import CLUSTER_SCOPED, load_manifests
from edgekube.model.node import Node
from edgekube.model.pod import Pod
from edgekube.model.wire import ApiRequest, ApiResponse, ErrorInfo, Outcome, Verb
from edgekube.store.protocol import StateStore

log = logging.getLogger(__name__)

KINDS = ("Pod", "Node")
NodeDecorator = Callable[[dict[str, Any]], dict[str, Any]]
#: apply's plan: (kind, namespace, name) -> ("create" | "update", object to write), in manifest order.
_Writes = dict[tuple[str, str, str], tuple[str, dict[str, Any]]]


def error_info(exc: Exception) -> ErrorInfo:
    """Map an exception to the wire error: reason word + one-line message + hint."""
    hint = getattr(exc, "hint", "") or ""
    if isinstance(exc, ValidationError):
        return ErrorInfo(reason="Invalid", message=str(exc), hint=hint)
    if isinstance(exc, NotFoundError):
        return ErrorInfo(reason="NotFound", message=str(exc), hint=hint)
    if isinstance(exc, ConflictError):
        return ErrorInfo(reason="Conflict", message=str(exc), hint=hint)
    if isinstance(exc, EdgekubeError):
        return ErrorInfo(reason="Unavailable", message=str(exc), hint=hint)
    return ErrorInfo(
        reason="Internal", message=f"internal error: {type(exc).__name__}: {exc}", hint="see the master's log"
    )


def _namespace_of(kind: str, namespace: str | None) -> str:
    return "" if kind in CLUSTER_SCOPED else (namespace or "default")


def _check_kind(kind: str | None) -> str:
    if kind not in KINDS:
        raise ValidationError(f"kind: {kind!r} is not supported (supported: {', '.join(KINDS)})")
    return kind


class Api:
    """Stateless request handling over the store; `decorate_node` adds live conditions to Node objects."""

    def __init__(self, store: StateStore, decorate_node: NodeDecorator) -> None:
        self.store = store
        self.decorate_node = decorate_node

    def handle(self, req: ApiRequest) -> ApiResponse:
        try:
            if req.verb is Verb.APPLY:
                return ApiResponse(ok=True, outcomes=self.apply(req.manifest or "", source="request"))
            kind = _check_kind(req.kind)
            if req.verb is Verb.GET:
                if not req.name:
                    raise ValidationError("name: Required value for verb get")
                return ApiResponse(ok=True, object=self.get(kind, req.namespace, req.name))
            if req.verb is Verb.LIST:
                return ApiResponse(ok=True, items=self.list(kind, req.namespace, req.selector))
            if req.verb is Verb.DELETE:
                if not req.name:
                    raise ValidationError("name: Required value for verb delete")
                return ApiResponse(ok=True, outcomes=[self.delete(kind, req.namespace, req.name)])
            raise ValidationError(f"verb: {req.verb.value!r} is not handled by the master API")
        except Exception as exc:  # every failure becomes an answer, never a crash
            if not isinstance(exc, EdgekubeError):
                log.exception("request %s failed", req.verb)
            return ApiResponse(ok=False, error=error_info(exc))

    # -- verbs -------------------------------------------------------------------------------------------
    def apply(self, text: str | bytes, *, source: str = "") -> list[Outcome]:
        """Create or update every object in a manifest; all documents are validated before any is stored."""
        documents = load_manifests(text, source=source)
        # Plan every document first (a forbidden spec change is an error too), then write: all or nothing.
        writes: _Writes = {}
        outcomes = [self._plan_one(doc.obj.to_dict(), writes) for doc in documents]
        for verb, obj in writes.values():
            (self.store.create if verb == "create" else self.store.update)(obj)
        return outcomes

    def _plan_one(self, obj: dict[str, Any], writes: _Writes) -> Outcome:
        kind, meta = obj["kind"], obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        obj.pop("status", None)
        for server_field in ("uid", "resourceVersion", "creationTimestamp", "generation"):
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
                writes[key] = ("create", obj)
                return Outcome(kind=kind, namespace=namespace, name=name, action="created")
        merged = self._merge(kind, current, obj)
        if merged == current:
            return Outcome(kind=kind, namespace=namespace, name=name, action="unchanged")
        writes[key] = (verb, merged)
        return Outcome(kind=kind, namespace=namespace, name=name, action="updated")

    @staticmethod
    def _merge(kind: str, current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        merged = {**current, "metadata": dict(current["metadata"])}
        merged["metadata"]["labels"] = new["metadata"].get("labels", {})
        merged["metadata"]["annotations"] = new["metadata"].get("annotations", {})
        if kind == "Pod":
            spec = dict(new["spec"])
            bound = current["spec"].get("nodeName")
            if bound and not spec.get("nodeName"):
                spec["nodeName"] = bound
            if spec != current["spec"]:
                raise ValidationError(
                    f"Pod {current['metadata']['namespace']}/{current['metadata']['name']}: spec: Forbidden: "
                    "pod updates may not change fields other than metadata.labels and metadata.annotations",
                    hint="delete the pod and apply it again (a ReplicationController does this for you)",
                )
        else:
            merged["spec"] = new.get("spec", current.get("spec", {}))
        return merged

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get(kind, _namespace_of(kind, namespace), name)
        return self.decorate_node(obj) if kind == "Node" else obj

    def list(self, kind: str, namespace: str | None, selector: str | None) -> list[dict[str, Any]]:
        sel = parse_selector(selector or "")
        ns = None if kind in CLUSTER_SCOPED else namespace
        items = [o for o in self.store.list(kind, ns) if sel.matches(o["metadata"].get("labels", {}))]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return [self.decorate_node(o) for o in items] if kind == "Node" else items

    def delete(self, kind: str, namespace: str | None, name: str) -> Outcome:
        ns = _namespace_of(kind, namespace)
        self.store.delete(kind, ns, name)
        return Outcome(kind=kind, namespace=ns, name=name, action="deleted")


def validate_pod(obj: dict[str, Any]) -> Pod:
    return Pod.from_dict(obj)


def validate_node(obj: dict[str, Any]) -> Node:
    return Node.from_dict(obj)
