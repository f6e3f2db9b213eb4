"""The linter's rules over manifests and live objects; each finding names where, the rule, and the fix.

Objects are plain dicts (decoded manifests, which may not even be valid, or what the master lists), each an
`Item` with where it came from. Rules reason per namespace over Services, ReplicationControllers, ReplicaSets,
Pods and pod templates; `unsatisfiable-placement` needs the cluster's Nodes (`nodes` given: `ekctl lint --cluster`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgekube.model.errors import ValidationError
from edgekube.model.labels import Selector
from edgekube.model.lint.marks import Marks, Path
from edgekube.model.lint.reason import overlap, suggestion, unmet

#: Rule id → what it finds (docs/services.md lists them with examples).
RULES = {
    "missed-route": "a Service selector that matches no pod and no pod template",
    "selector-overlap": "two controllers whose selectors can select the same pod",
    "template-mismatch": "a pod template that does not satisfy its own controller's selector",
    "unsatisfiable-placement": "a nodeSelector or required node affinity no node satisfies (--cluster)",
    "label-key-typo": "a selector key on no object, like an existing label key but for case, prefix or a small edit",
    "unknown-target-port": "a Service targetPort name no container of its pods declares",
}
CONTROLLER_KINDS = ("ReplicationController", "ReplicaSet")
KINDS = ("Service", "Pod", *CONTROLLER_KINDS)


@dataclass(frozen=True)
class Item:
    """One object to lint: from a file (`source`, its document's `marks` for line numbers) or from the cluster."""

    obj: Mapping[str, Any]
    source: str = ""
    marks: Marks | None = None

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def meta(self) -> Mapping[str, Any]:
        meta = self.obj.get("metadata")
        return meta if isinstance(meta, Mapping) else {}

    @property
    def namespace(self) -> str:
        return str(self.meta.get("namespace") or "default")

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.meta.get('name') or self.meta.get('generateName') or '?'}"


@dataclass(frozen=True)
class Finding:
    rule: str
    ref: str  # "Service default/web"
    message: str
    fix: str
    source: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        if self.source:
            return f"{self.source}:{self.line} ({self.ref})" if self.line else f"{self.source} ({self.ref})"
        return self.ref

    def text(self) -> str:
        return f"{self.where}: {self.rule}: {self.message}; fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "object": self.ref,
            "file": self.source or None,
            "line": self.line or None,
            "message": self.message,
            "fix": self.fix,
        }


def _finding(item: Item, path: Path, rule: str, message: str, fix: str) -> Finding:
    line = item.marks.line(path) if item.marks is not None else 0
    return Finding(rule, item.ref, message, fix, item.source, line)


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _dict(value).items()}


def _selector(item: Item) -> tuple[Selector | None, Path]:
    """The item's own selector (Service, RC: a map; RS: a LabelSelector) and where it is; None: none or invalid."""
    spec = _dict(item.obj.get("spec"))
    raw = spec.get("selector")
    try:
        if item.kind == "ReplicaSet":
            sel = _dict(raw)
            if not sel.get("matchLabels") and not sel.get("matchExpressions"):
                return None, ("spec", "selector")
            return Selector.from_match_labels(sel.get("matchLabels"), sel.get("matchExpressions")), ("spec", "selector")
        selector = _labels(raw) or (
            _labels(_template_meta(item).get("labels")) if item.kind in CONTROLLER_KINDS else {}
        )
        return (Selector.from_set(selector) if selector else None), ("spec", "selector")
    except (ValidationError, TypeError, KeyError):
        return None, ("spec", "selector")


def _template_meta(item: Item) -> dict[str, Any]:
    return _dict(_dict(_dict(item.obj.get("spec")).get("template")).get("metadata"))


@dataclass(frozen=True)
class _Pods:
    """What can carry labels in a namespace: pods and controllers' templates, with their containers' ports."""

    #: (labels, pod spec, the item it is in, path of its labels, path of its pod spec)
    entries: list[tuple[dict[str, str], dict[str, Any], Item, Path, Path]] = field(default_factory=list)

    def matching(self, selector: Selector) -> list[tuple[dict[str, str], dict[str, Any], Item, Path, Path]]:
        return [e for e in self.entries if selector.matches(e[0])]

    def keys(self) -> set[str]:
        return {key for labels, *_ in self.entries for key in labels}


_Entry = tuple[dict[str, str], dict[str, Any], Item, Path, Path]


def _pod_like(items: Sequence[Item]) -> dict[str, _Pods]:
    found: dict[str, _Pods] = {}
    entry: _Entry
    for item in items:
        if item.kind == "Pod":
            entry = (_labels(item.meta.get("labels")), _dict(item.obj.get("spec")), item, ("metadata", "labels"),
                     ("spec",))  # fmt: skip
        elif item.kind in CONTROLLER_KINDS:
            template = _dict(_dict(item.obj.get("spec")).get("template"))
            entry = (_labels(_template_meta(item).get("labels")), _dict(template.get("spec")), item,
                     ("spec", "template", "metadata", "labels"), ("spec", "template", "spec"))  # fmt: skip
        else:
            continue
        found.setdefault(item.namespace, _Pods()).entries.append(entry)
    return found


def _text(selector: Selector) -> str:
    return str(selector) or "(empty)"


def lint(items: Sequence[Item], nodes: Sequence[Mapping[str, Any]] | None = None) -> list[Finding]:
    """Every finding of every rule, in the items' order (rules in RULES' order per item)."""
    items = [i for i in items if i.kind in KINDS]
    pods = _pod_like(items)
    findings: list[Finding] = []
    controllers = [i for i in items if i.kind in CONTROLLER_KINDS]
    for item in items:
        ns_pods = pods.get(item.namespace, _Pods())
        if item.kind == "Service":
            findings += _service(item, ns_pods)
        if item.kind in CONTROLLER_KINDS:
            findings += _controller(item, ns_pods, controllers)
        if nodes is not None and item.kind in ("Pod", *CONTROLLER_KINDS):
            findings += _placement(item, nodes)
    return findings


def _typos(item: Item, selector: Selector, path: Path, known: set[str], what: str) -> Iterator[Finding]:
    for req in selector.requirements:
        if req.key in known:
            continue
        meant = suggestion(req.key, known)
        if meant is not None:
            yield _finding(
                item,
                (*path, req.key) if item.kind != "ReplicaSet" else path,
                "label-key-typo",
                f'selector key "{req.key}" is on no {what}; did you mean `{meant}`?',
                f"write `{meant}` in the selector, or label the {what}s with `{req.key}`",
            )


def _service(item: Item, pods: _Pods) -> Iterator[Finding]:
    selector, path = _selector(item)
    if selector is None:
        return
    matched = pods.matching(selector)
    if not matched:
        known = sorted({f"{k}={v}" for labels, *_ in pods.entries for k, v in labels.items()})
        hint = f" (labels in namespace {item.namespace}: {', '.join(known[:5])})" if known else ""
        yield _finding(
            item,
            path,
            "missed-route",
            f"selector {_text(selector)} matches no pod and no pod template in namespace {item.namespace}",
            f"change spec.selector to labels its pods carry{hint}, or label the pods",
        )
    yield from _typos(item, selector, path, pods.keys(), "pod")
    declared: set[str] = set()
    for _, spec, *_ in matched or pods.entries:
        for container in spec.get("containers") or ():
            for port in _dict(container).get("ports") or ():
                if _dict(port).get("name"):
                    declared.add(str(port["name"]))
    for i, port in enumerate(_dict(item.obj.get("spec")).get("ports") or ()):
        target = _dict(port).get("targetPort")
        if isinstance(target, str) and target and target not in declared:
            whose = "of the pods it selects" if matched else f"in namespace {item.namespace}"
            names = f"use one of {', '.join(sorted(declared))}" if declared else "use the port number"
            yield _finding(
                item,
                ("spec", "ports", i, "targetPort"),
                "unknown-target-port",
                f'targetPort "{target}" is declared by no container {whose}',
                f'name a containerPort "{target}", or {names}',
            )


def _controller(item: Item, pods: _Pods, controllers: Sequence[Item]) -> Iterator[Finding]:
    selector, path = _selector(item)
    if selector is None:
        return
    labels = _labels(_template_meta(item).get("labels"))
    missing = unmet(selector, labels)
    if missing:
        yield _finding(
            item,
            ("spec", "template", "metadata", "labels"),
            "template-mismatch",
            f"template labels {_labels_text(labels)} do not satisfy its selector {_text(selector)}",
            f"make spec.template.metadata.labels satisfy {', '.join(str(r) for r in missing)}",
        )
    yield from _typos(item, selector, path, pods.keys(), "pod or template")
    for other in controllers:
        if other is item:
            break
        if other.namespace != item.namespace:
            continue
        theirs, _ = _selector(other)
        if theirs is not None and overlap(selector, theirs):
            name = item.meta.get("name") or "this"
            yield _finding(
                item,
                path,
                "selector-overlap",
                f"selector {_text(selector)} can select the same pods as {other.ref} (selector {_text(theirs)})",
                f"add a label that tells their pods apart (e.g. controller={name}) to this selector and template",
            )


def _labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(none)"


def _placement(item: Item, nodes: Sequence[Mapping[str, Any]]) -> Iterator[Finding]:
    from edgekube.model.affinity import NodeSelector  # noqa: PLC0415 - pydantic models only when nodes are linted

    base: Path = ("spec",) if item.kind == "Pod" else ("spec", "template", "spec")
    spec = _dict(item.obj.get("spec"))
    if item.kind != "Pod":
        spec = _dict(_dict(spec.get("template")).get("spec"))
    wanted = _labels(spec.get("nodeSelector"))
    required: NodeSelector | None = None
    raw = _dict(_dict(_dict(spec.get("affinity")).get("nodeAffinity"))).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if raw:
        try:
            required = NodeSelector.model_validate(raw)
        except ValueError:
            required = None
    if not wanted and required is None:
        return
    labelled = [(str(_dict(n.get("metadata")).get("name") or ""), _labels(_dict(n.get("metadata")).get("labels")))
                for n in nodes]  # fmt: skip
    fits = [
        name
        for name, labels in labelled
        if all(labels.get(k) == v for k, v in wanted.items()) and (required is None or required.matches(labels, name))
    ]
    if fits:
        return
    what = f"nodeSelector {_labels_text(wanted)}" if wanted else "required node affinity"
    if wanted and required is not None:
        what += " with its required node affinity"
    path = (*base, "nodeSelector") if wanted else (*base, "affinity")
    known = {k for _, labels in labelled for k in labels}
    meant = next((m for k in wanted if k not in known and (m := suggestion(k, known))), None)
    hint = f" (did you mean `{meant}`?)" if meant else ""
    yield _finding(
        item,
        path,
        "unsatisfiable-placement",
        f"{what} matches none of the {len(nodes)} node(s){hint}",
        "label a node to match (ekctl label node NAME KEY=VALUE) or change the pod's node constraints",
    )
