"""Manifest loading: YAML/JSON text → validated objects (multi-document, `kind: List`); used by master and CLI."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic
import yaml

from edgekube.model import fielderrors, jsoncodec
from edgekube.model.base import K8sModel
from edgekube.model.config import ConfigMap, Secret
from edgekube.model.controllers import ReplicaSet, ReplicationController
from edgekube.model.deployment import Deployment
from edgekube.model.errors import ValidationError
from edgekube.model.node import Node
from edgekube.model.pod import Pod
from edgekube.model.service import Service
from edgekube.model.storage import PersistentVolume, PersistentVolumeClaim, StorageClass

M = TypeVar("M", bound=K8sModel)

#: (apiVersion, kind) → model. Namespaced kinds get `metadata.namespace` defaulted to "default".
KINDS: dict[tuple[str, str], type[K8sModel]] = {
    ("v1", "Pod"): Pod,
    ("v1", "Node"): Node,
    ("v1", "ReplicationController"): ReplicationController,
    ("apps/v1", "ReplicaSet"): ReplicaSet,
    ("apps/v1", "Deployment"): Deployment,
    ("v1", "PersistentVolume"): PersistentVolume,
    ("v1", "PersistentVolumeClaim"): PersistentVolumeClaim,
    ("storage.k8s.io/v1", "StorageClass"): StorageClass,
    ("v1", "ConfigMap"): ConfigMap,
    ("v1", "Secret"): Secret,
    ("v1", "Service"): Service,
}
CLUSTER_SCOPED = frozenset({"Node", "PersistentVolume", "StorageClass"})
#: Kinds whose manifest `status` is dropped unread, as the API server ignores it (docs/compatibility.md).
STATUS_IGNORED = frozenset({"Pod", "ReplicationController", "ReplicaSet", "Service", "Deployment"})
MAX_MANIFEST_BYTES = 1024 * 1024


class ManifestError(ValidationError):
    """One document broke one or more rules; `problems` lists each as `field.path: rule`."""

    def __init__(self, problems: list[str], *, source: str = "", index: int | None = None) -> None:
        self.problems = problems
        self.source = source
        self.index = index
        where = source
        if index is not None:
            where = f"{where}[{index}]" if where else f"document {index}"
        prefix = f"{where}: " if where else ""
        super().__init__(prefix + "; ".join(problems), hint="run `ekctl lint FILE` to list every problem")


#: Map-valued fields: an error inside one names the entry by key, as field.Path's Key does (`limits[cpu]`).
_MAPS = frozenset({"requests", "limits", "capacity", "allocatable", "labels", "annotations", "nodeSelector"})


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    previous: int | str = ""
    for part in loc:
        if isinstance(part, int) or (previous in _MAPS and path):
            path += f"[{part}]"
        elif part.startswith("[") or not path:
            path += part
        else:
            path += f".{part}"
        previous = part
    return path


def _problems(exc: pydantic.ValidationError) -> list[str]:
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # Literal/dict-key errors add pseudo-locations like "[key]"; keep the user's field names.
        loc = tuple(p for p in loc if p not in ("[key]",))
        message = fielderrors.manifest_message(error)
        path = _field_path(loc)
        # A validator reports several problems as one line each (see fielderrors.Problems), each relative to
        # the model it checks: `containers[0].ports[0].name: Invalid value: ...` under `spec`.
        problems.extend(fielderrors.nest(path, line) for line in message.splitlines() or [message])
    return problems


def validate_model(model: type[M], data: Any, *, source: str = "", index: int | None = None) -> M:
    """Validate a dict as `model`, turning pydantic's errors into one ManifestError naming every field."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ManifestError(_problems(exc), source=source, index=index) from None


@dataclass(frozen=True)
class Document:
    """One validated object and where it came from."""

    obj: K8sModel
    source: str
    index: int


def parse_object(data: Any, *, source: str = "", index: int | None = None) -> K8sModel:
    """Validate one decoded document: known apiVersion/kind, every field supported, namespace defaulted."""
    if not isinstance(data, dict):
        raise ManifestError([f"document must be a mapping, got {type(data).__name__}"], source=source, index=index)
    api_version, kind = data.get("apiVersion"), data.get("kind")
    problems = []
    if not api_version:
        problems.append("apiVersion: Required value")
    if not kind:
        problems.append("kind: Required value")
    if problems:
        raise ManifestError(problems, source=source, index=index)
    model = KINDS.get((str(api_version), str(kind)))
    if model is None:
        known = ", ".join(f"{k} ({v})" for v, k in KINDS)
        raise ManifestError(
            [f"kind: {kind} ({api_version}) is not supported (supported: {known})"], source=source, index=index
        )
    metadata = data.get("metadata")
    if isinstance(metadata, dict):
        data = {**data, "metadata": dict(metadata)}
        if kind in CLUSTER_SCOPED:
            data["metadata"]["namespace"] = ""
        elif not data["metadata"].get("namespace"):
            data["metadata"]["namespace"] = "default"
    if kind in STATUS_IGNORED and "status" in data:
        # The API server resets a workload's status on create and update (the strategies' PrepareForCreate/Update):
        # it is the server's to write, so a manifest's (`kubectl get -o yaml` output) is neither checked nor kept.
        data = {key: value for key, value in data.items() if key != "status"}
    return validate_model(model, data, source=source, index=index)


def _strict(base: Any) -> Any:
    """`base` refusing a key given twice in one mapping, as Kubernetes' strict decoding (sigs.k8s.io/yaml) does."""

    class Strict(base):  # type: ignore[misc]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: set[str] = set()
                for key_node, _ in node.value:  # the mapping's own keys: overriding a merged (`<<`) key is fine
                    if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                        if key_node.value in seen:
                            raise yaml.constructor.ConstructorError(
                                None, None, f'key "{key_node.value}" already set in map', key_node.start_mark
                            )
                        seen.add(key_node.value)
            return super().construct_mapping(node, deep=deep)

    return Strict


#: libyaml's loader when PyYAML was built with it (about 10x faster); same results as the pure-Python one.
_FAST_LOADER: Any = _strict(yaml.CSafeLoader) if hasattr(yaml, "CSafeLoader") else None
_LOADER: Any = _strict(yaml.SafeLoader)


def _parse(text: str) -> list[Any]:
    """YAML documents of `text`: JSON text via json (a thousand pods in milliseconds), else libyaml if present.

    A parse error is always raised by the pure-Python loader, so its message does not depend on libyaml.
    """
    if text.lstrip()[:1] in ("{", "["):
        try:
            data = jsoncodec.loads(text)
        except ValueError:
            pass  # not JSON after all (or broken): YAML decides, and words the error
        else:
            return [] if data is None else [data]
    if _FAST_LOADER is not None:
        try:
            return [d for d in yaml.load_all(text, Loader=_FAST_LOADER) if d is not None]
        except yaml.YAMLError:
            pass
    return [d for d in yaml.load_all(text, Loader=_LOADER) if d is not None]


def decode_documents(text: str | bytes, *, source: str = "") -> list[Any]:
    """Decode YAML (multi-document) or JSON text; `kind: List` is flattened into its items."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_MANIFEST_BYTES:
        raise ValidationError(f"{source or 'manifest'}: {size} bytes exceeds the limit of {MAX_MANIFEST_BYTES} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"{source or 'manifest'}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
    try:
        raw = _parse(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError(f"{source or 'manifest'}: invalid YAML{where}: {problem}") from None
    documents: list[Any] = []
    for doc in raw:
        if isinstance(doc, dict) and doc.get("kind") == "List":
            items = doc.get("items")
            if not isinstance(items, list):
                raise ValidationError(f"{source or 'manifest'}: items: a List must have an `items` list")
            documents.extend(items)
        else:
            documents.append(doc)
    return documents


def load_manifests(text: str | bytes, *, source: str = "") -> list[Document]:
    """Decode and validate every document; the first invalid one raises ManifestError."""
    return [
        Document(parse_object(data, source=source, index=i), source, i)
        for i, data in enumerate(decode_documents(text, source=source))
    ]


def lint_manifests(text: str | bytes, *, source: str = "") -> Iterator[ValidationError]:
    """Yield every problem in every document (for `ekctl lint`), never stopping at the first."""
    try:
        documents = decode_documents(text, source=source)
    except ValidationError as exc:
        yield exc
        return
    for i, data in enumerate(documents):
        try:
            parse_object(data, source=source, index=i)
        except ValidationError as exc:
            yield exc
