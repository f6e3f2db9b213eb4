"""`ekctl describe pod|node|rc|rs|pv|pvc|sc|cm|secret [NAME...]`: kubectl's human-readable view of each object."""

from __future__ import annotations

from edgekube.cli import cmd_masters, events, workloads
from edgekube.cli.cmd_get import no_resources, objects_of
from edgekube.cli.configdata import describe_configmap, describe_secret
from edgekube.cli.context import Context
from edgekube.cli.deployments import describe_deployment
from edgekube.cli.describe_controller import describe_controller
from edgekube.cli.describe_node import describe_node
from edgekube.cli.describe_pod import describe_pod
from edgekube.cli.describe_storage import describe_pv, describe_pvc, describe_sc
from edgekube.cli.kinds import (
    CM,
    DEPLOY,
    EP,
    EVENT,
    NODE,
    POD,
    PV,
    PVC,
    RC,
    RS,
    SC,
    SECRET,
    SVC,
    Resource,
    require,
    split_multi,
)
from edgekube.cli.services import describe_service
from edgekube.cli.status import section
from edgekube.model.errors import BusError, EdgekubeError, NotFoundError, ValidationError
from edgekube.model.types import Obj


class Related:
    """Pods and events needed beside the described objects, each list fetched at most once per scope."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._pods: dict[str | None, list[Obj]] = {}
        self._events: dict[str | None, list[Obj] | None] = {}

    def pods(self, namespace: str | None) -> list[Obj]:
        if namespace not in self._pods:
            self._pods[namespace] = self.ctx.client().query(POD, namespace)
        return self._pods[namespace]

    def endpoints(self, service: Obj) -> Obj | None:
        """The Service's Endpoints object (None: it has none, e.g. no selector)."""
        meta = section(service, "metadata")
        try:
            return self.ctx.client().get(EP, str(meta.get("namespace") or self.ctx.namespace), str(meta.get("name")))
        except NotFoundError:
            return None

    def events(self, obj: Obj, res: Resource) -> list[Obj] | None:
        """The object's events; None when the master cannot list events (the section is then left out)."""
        namespace = self.ctx.namespace if res.namespaced else None
        if namespace not in self._events:
            try:
                self._events[namespace] = self.ctx.client().query(EVENT, namespace)
            except BusError:
                raise
            except EdgekubeError:
                self._events[namespace] = None
        found = self._events[namespace]
        return None if found is None else events.about(found, obj)


def _describe(related: Related, res: Resource, obj: Obj) -> str:
    found = related.events(obj, res)
    if res == NODE:
        name = section(obj, "metadata").get("name")
        bound = [p for p in related.pods(None) if section(p, "spec").get("nodeName") == name]
        return describe_node(obj, bound, found)
    if res in (RC, RS):
        owned = [p for p in related.pods(related.ctx.namespace) if workloads.owns(obj, p)]
        return describe_controller(obj, owned, found)
    if res == DEPLOY:
        namespace = str(section(obj, "metadata").get("namespace") or related.ctx.namespace)
        return describe_deployment(obj, related.ctx.client().query(RS, namespace), found)
    if res == PVC:
        return describe_pvc(obj, related.pods(section(obj, "metadata").get("namespace") or "default"), found)
    if res == PV:
        return describe_pv(obj, found)
    if res == SC:
        return describe_sc(obj, found)
    if res == CM:
        return describe_configmap(obj, found)
    if res == SECRET:
        return describe_secret(obj, found)
    if res == SVC:
        return describe_service(obj, related.endpoints(obj), found)
    return describe_pod(obj, found)


def run(ctx: Context) -> int:
    if cmd_masters.wanted(ctx.resource_args):  # HA masters: their presences on the broker, not API objects
        return cmd_masters.run_describe(ctx)
    targets = split_multi(ctx.resource_args)
    if any(names for _res, names in targets) and ctx.args.selector:
        raise ValidationError("name cannot be provided when a selector is specified")
    for res, _names in targets:
        require(res, (POD, NODE, RC, RS, DEPLOY, PV, PVC, SC, CM, SECRET, SVC), "describe")
    related = Related(ctx)
    texts: list[str] = []
    missing = 0
    for res, names in targets:
        objects, lost = objects_of(ctx, res, names, ctx.args.selector, all_namespaces=False)
        missing += lost
        texts.extend(_describe(related, res, obj) for obj in objects)
    if not texts and not missing:
        no_resources(ctx, targets[0][0] if len(targets) == 1 else None, all_namespaces=False)
    ctx.out.write("\n\n".join(texts))
    return 1 if missing else 0
