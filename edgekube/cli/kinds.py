"""Resource type names the user may type (`pods`, `po`, `node`, `pod/NAME`) and how kinds are spelled back."""

from __future__ import annotations

from dataclasses import dataclass

from edgekube.model.errors import ValidationError


@dataclass(frozen=True)
class Resource:
    kind: str  # as on the wire: "Pod"
    singular: str  # as in `pod/hello` and `pod "hello" deleted`
    plural: str  # as in kubectl's NotFound wording: `pods "hello" not found`
    namespaced: bool


POD = Resource("Pod", "pod", "pods", namespaced=True)
NODE = Resource("Node", "node", "nodes", namespaced=False)
_ALIASES = {
    **dict.fromkeys(("pods", "pod", "po"), POD),
    **dict.fromkeys(("nodes", "node", "no"), NODE),
}
_BY_KIND = {POD.kind: POD, NODE.kind: NODE}
SUPPORTED = "pods (po), nodes (no)"


def resource(name: str) -> Resource:
    """Look up the resource for a type name; case-insensitive like kubectl."""
    found = _ALIASES.get(name.lower())
    if found is None:
        raise ValidationError(
            f'the server doesn\'t have a resource type "{name}"', hint=f"resource types: {SUPPORTED}"
        )
    return found


def for_kind(kind: str) -> Resource:
    found = _BY_KIND.get(kind)
    if found is None:
        return Resource(kind, kind.lower(), kind.lower() + "s", namespaced=True)
    return found


def split_args(args: list[str]) -> tuple[Resource, list[str]]:
    """`TYPE [NAME...]` or `TYPE/NAME...` (all of one type, as edgekube's API serves one kind per request)."""
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
        return resource(args[0]), names
    found: Resource | None = None
    names = []
    for arg in args:
        type_name, _, name = arg.partition("/")
        if not type_name or not name:
            raise ValidationError(
                f"arguments in resource/name form must have a single resource and name: {arg}"
            )
        this = resource(type_name)
        if found is not None and this != found:
            raise ValidationError(
                f"mixed resource types in one command: {found.plural} and {this.plural}",
                hint="run one command per resource type",
            )
        found = this
        names.append(name)
    assert found is not None
    return found, names
