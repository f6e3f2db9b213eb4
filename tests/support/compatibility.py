"""docs/compatibility.md against the model: the field paths the models accept, Kubernetes' own, and the doc's rows.

Used by tests/unit/test_compatibility_doc.py. Path convention (also stated at the top of the doc): camelCase as
on the wire, from the object's root, `[]` for a list's items, a map (`labels`, `nodeSelector`, `limits`) is one
field; in a ReplicationController or ReplicaSet `spec.template.spec` is a Pod's `spec`, so its fields are the
Pod's `spec.` paths; a path applies to every kind that has it; `X.*` names every field under `X`.
"""

from __future__ import annotations

import copy
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from edgekube.model.base import K8sModel
from edgekube.model.controllers import ReplicaSet, ReplicationController
from edgekube.model.deployment import Deployment
from edgekube.model.pod import Pod

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "compatibility.md"
#: Every field of Kubernetes' v1 Pod, ReplicationController and apps/v1 ReplicaSet (status: only the root), as
#: canonical paths; see the file's header for where it comes from.
KUBERNETES_FIELDS = ROOT / "tests" / "unit" / "data" / "k8s-v1-fields.txt"
KINDS: dict[str, type[K8sModel]] = {
    "Pod": Pod,
    "ReplicationController": ReplicationController,
    "ReplicaSet": ReplicaSet,
    "Deployment": Deployment,
}
TEMPLATE_SPEC = "spec.template.spec"

Status = Literal["supported", "accepted and ignored", "rejected"]
STATUSES: tuple[Status, ...] = ("supported", "accepted and ignored", "rejected")
_PATH = re.compile(r"^[a-zA-Z][a-zA-Z0-9]*(\[\])?(\.[a-zA-Z][a-zA-Z0-9]*(\[\])?)*(\.\*)?$")
_TICKS = re.compile(r"`([^`]*)`")
_BRACES = re.compile(r"\{([^{}]*)\}")


def expand(pattern: str) -> list[str]:
    """Shell-style brace expansion: `a.{b,c[]}.d` → `a.b.d`, `a.c[].d`."""
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [path for choice in match.group(1).split(",") for path in expand(head + choice + tail)]


def canonical(path: str) -> str:
    """A controller's pod template spec field is the Pod's `spec.` field of the same name."""
    if path == TEMPLATE_SPEC or path.startswith(TEMPLATE_SPEC + "."):
        return "spec" + path.removeprefix(TEMPLATE_SPEC)
    return path


def parent(path: str) -> str:
    """`spec.containers[].image` → `spec.containers`; a root field's parent is ``."""
    head = path.rpartition(".")[0]
    return head.removesuffix("[]")


def _models(annotation: Any) -> tuple[list[type[K8sModel]], str]:
    """The K8sModel classes a field holds (unwrapping Optional, unions, Annotated) and `[]` per list level."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        found: list[type[K8sModel]] = []
        suffix = ""
        for arg in get_args(annotation):
            models, suffix_of = _models(arg)
            found += [m for m in models if m not in found]
            suffix = suffix or (suffix_of if models else "")
        return found, suffix
    if origin is list:
        models, suffix = _models(get_args(annotation)[0])
        return models, "[]" + suffix
    if isinstance(annotation, type) and issubclass(annotation, K8sModel):
        return [annotation], ""
    return [], ""  # a scalar, an enum, a Literal or a map: a leaf


def model_paths(model: type[K8sModel], prefix: str = "", seen: tuple[type[K8sModel], ...] = ()) -> dict[str, bool]:
    """Every field path `model` accepts (wire names), mapped to True where the field is an object with fields."""
    paths: dict[str, bool] = {}
    for name, info in model.model_fields.items():
        path = prefix + (info.alias or name)
        models, suffix = _models(info.annotation)
        paths[path] = bool(models)
        for nested in models:
            if nested not in seen:
                paths.update(model_paths(nested, f"{path}{suffix}.", (*seen, model)))
    return paths


def accepted() -> dict[str, dict[str, bool]]:
    """Canonical path → {kind: is an object} over Pod, ReplicationController and ReplicaSet."""
    found: dict[str, dict[str, bool]] = {}
    for kind, model in KINDS.items():
        for path, is_object in model_paths(model).items():
            found.setdefault(canonical(path), {})[kind] = is_object
    return found


def kubernetes_fields() -> set[str]:
    lines = KUBERNETES_FIELDS.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


@dataclass
class Row:
    line: int
    paths: list[str]
    status: Status | None
    text: str


@dataclass
class Doc:
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def by_path(self) -> dict[str, Row]:
        return {path: row for row in self.rows for path in row.paths}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse_doc(text: str) -> Doc:
    """The rows of every table whose first column is headed `field`: paths (backticked) and status."""
    doc = Doc()
    in_field_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("|"):
            in_field_table = False
            continue
        cells = _cells(line)
        if set(cells[0]) <= set("-: ") and cells[0]:
            continue  # the separator under the header
        if cells[0] == "field":
            in_field_table = True
            continue
        if not in_field_table:
            continue
        patterns = _TICKS.findall(cells[0])
        paths = [path for pattern in patterns for path in expand(pattern)]
        leftover = _TICKS.sub("", cells[0]).replace(",", "").strip()
        if not patterns or leftover:
            doc.problems.append(f"line {number}: the field column must hold backticked paths only: {cells[0]!r}")
        for path in paths:
            if not _PATH.match(path):
                doc.problems.append(f"line {number}: {path!r} is not a field path (see the convention at the top)")
        word = cells[1].lower() if len(cells) > 1 else ""
        status = next((s for s in STATUSES if word.startswith(s)), None)
        if status is None:
            doc.problems.append(f"line {number}: status {word!r} is none of {', '.join(STATUSES)}")
        doc.rows.append(Row(number, paths, status, line))
    return doc


def covering_row(path: str, rows: dict[str, Row]) -> Row | None:
    """The row naming `path`, or a `X.*` row for an object `path` is inside."""
    if path in rows:
        return rows[path]
    head = path
    while head:
        head = parent(head) if "." in head else ""
        star = rows.get(f"{head}.*") if head else None
        if star is not None:
            return star
    return None


def _segments(path: str) -> list[tuple[str, bool]]:
    return [(part.removesuffix("[]"), part.endswith("[]")) for part in path.split(".")]


def with_field(manifest: dict[str, Any], path: str, value: object) -> tuple[dict[str, Any], str]:
    """A copy of `manifest` with `value` at `path` (missing objects and lists created) and the concrete path."""
    data = copy.deepcopy(manifest)
    node: dict[str, Any] = data
    concrete: list[str] = []
    parts = _segments(path)
    for name, is_list in parts[:-1]:
        child = node.setdefault(name, [] if is_list else {})
        if is_list:
            if not child:
                child.append({})
            concrete.append(f"{name}[0]")
            node = child[0]
        else:
            concrete.append(name)
            node = child
    node[parts[-1][0]] = value
    concrete.append(parts[-1][0])
    return data, ".".join(concrete)


MINIMAL_POD_SPEC: dict[str, Any] = {"containers": [{"name": "app", "image": "busybox"}]}
MINIMAL: dict[str, dict[str, Any]] = {
    "Pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": MINIMAL_POD_SPEC},
    "ReplicationController": {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "rc"},
        "spec": {"template": {"metadata": {"labels": {"app": "a"}}, "spec": MINIMAL_POD_SPEC}},
    },
    "ReplicaSet": {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "rs"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": MINIMAL_POD_SPEC},
        },
    },
    "Deployment": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "deploy"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": MINIMAL_POD_SPEC},
        },
    },
}
