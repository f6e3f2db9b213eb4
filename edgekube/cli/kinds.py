"""Resource type names the user may type (`pods`, `rs.apps`, `pod/NAME`, `rc,rs`) and how kinds are spelled back."""

from __future__ import annotations

from dataclasses import dataclass

from edgekube.model.errors import ValidationError


@dataclass(frozen=True)
class Resource:
    kind: str  # as on the wire: "Pod"
    singular: str  # as typed: `ekctl get replicaset`
    plural: str  # as typed: `ekctl get replicasets`
    namespaced: bool
    group: str = ""  # API group; kubectl spells non-core kinds `replicaset.apps/web`

    @property
    def qualified(self) -> str:
        """The prefix of `replicationcontroller/web`, `replicaset.apps/web`, `pod "x" deleted`."""
        return f"{self.singular}.{self.group}" if self.group else self.singular

    @property
    def qualified_plural(self) -> str:
        """As in kubectl's NotFound wording: `replicasets.apps "web" not found`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


POD = Resource("Pod", "pod", "pods", namespaced=True)
NODE = Resource("Node", "node", "nodes", namespaced=False)
RC = Resource("ReplicationController", "replicationcontroller", "replicationcontrollers", namespaced=True)
RS = Resource("ReplicaSet", "replicaset", "replicasets", namespaced=True, group="apps")
DEPLOY = Resource("Deployment", "deployment", "deployments", namespaced=True, group="apps")
EVENT = Resource("Event", "event", "events", namespaced=True)
PV = Resource("PersistentVolume", "persistentvolume", "persistentvolumes", namespaced=False)
PVC = Resource("PersistentVolumeClaim", "persistentvolumeclaim", "persistentvolumeclaims", namespaced=True)
SC = Resource("StorageClass", "storageclass", "storageclasses", namespaced=False, group="storage.k8s.io")
CM = Resource("ConfigMap", "configmap", "configmaps", namespaced=True)
SECRET = Resource("Secret", "secret", "secrets", namespaced=True)
SVC = Resource("Service", "service", "services", namespaced=True)
EP = Resource("Endpoints", "endpoints", "endpoints", namespaced=True)
ES = Resource("EndpointSlice", "endpointslice", "endpointslices", namespaced=True, group="discovery.k8s.io")
CONTROLLERS = (RC, RS)
STORAGE = (PV, PVC, SC)
_SHORT = {
    POD: "po", NODE: "no", RC: "rc", RS: "rs", DEPLOY: "deploy", EVENT: "ev", PV: "pv", PVC: "pvc", SC: "sc", CM: "cm",
    SECRET: "secret",  # kubectl has no short name for secrets
    SVC: "svc", EP: "ep", ES: "endpointslice",  # kubectl has no short name for endpointslices
}  # fmt: skip
_ALIASES = {alias: res for res, short in _SHORT.items() for alias in (res.plural, res.singular, short)}
_BY_KIND = {res.kind: res for res in _SHORT}
SUPPORTED = ", ".join(f"{res.plural} ({short})" for res, short in _SHORT.items())


def _unknown(name: str) -> ValidationError:
    return ValidationError(f'the server doesn\'t have a resource type "{name}"', hint=f"resource types: {SUPPORTED}")


def resource(name: str) -> Resource:
    """Look up the resource for a type name; case-insensitive like kubectl, `rs.apps` accepted too."""
    lowered = name.lower()
    found = _ALIASES.get(lowered)
    if found is None and "." in lowered:
        base, _, group = lowered.partition(".")
        found = _ALIASES.get(base)
        if found is not None and found.group != group:
            found = None
    if found is None:
        raise _unknown(name)
    return found


def resources(text: str) -> list[Resource]:
    """`rc,rs` → both, in order, each once; an empty item (`pods,`) is an error like any unknown type."""
    found: list[Resource] = []
    for name in text.split(","):
        res = resource(name)
        if res not in found:
            found.append(res)
    return found


def for_kind(kind: str) -> Resource:
    found = _BY_KIND.get(kind)
    if found is None:
        return Resource(kind, kind.lower(), kind.lower() + "s", namespaced=True)
    return found


Targets = list[tuple[Resource, list[str]]]


def split_multi(args: list[str]) -> Targets:
    """`TYPE[,TYPE...] [NAME...]` or `TYPE/NAME...`: the names asked of each type, types in order given."""
    if not args:
        raise ValidationError("you must specify the type of resource", hint=f"resource types: {SUPPORTED}")
    if "/" not in args[0]:
        names = args[1:]
        bad = [n for n in names if "/" in n]
        if bad:
            raise ValidationError(
                f"there is no need to specify a resource type as a separate argument when passing "
                f"arguments in resource/name form: {bad[0]}",
                hint=f"write `{args[0]} NAME` or `TYPE/NAME`, not both",
            )
        return [(res, list(names)) for res in resources(args[0])]
    grouped: dict[Resource, list[str]] = {}
    for arg in args:
        type_name, _, name = arg.partition("/")
        if not type_name or not name or "," in type_name:
            raise ValidationError(f"arguments in resource/name form must have a single resource and name: {arg}")
        grouped.setdefault(resource(type_name), []).append(name)
    return list(grouped.items())


def split_args(args: list[str]) -> tuple[Resource, list[str]]:
    """`TYPE [NAME...]` or `TYPE/NAME...`, all of one type: for commands that act on a single kind."""
    targets = split_multi(args)
    if len(targets) > 1:
        first, other = targets[0][0], targets[1][0]
        raise ValidationError(
            f"mixed resource types in one command: {first.plural} and {other.plural}",
            hint="run one command per resource type",
        )
    return targets[0]


def require(res: Resource, allowed: tuple[Resource, ...], verb: str) -> None:
    """Refuse a type this command cannot act on, naming the ones it can."""
    if res not in allowed:
        names = ", ".join(f"{r.plural} ({_SHORT[r]})" for r in allowed)
        raise ValidationError(f"{verb}: {res.plural} are not supported", hint=f"{verb} works on {names}")
