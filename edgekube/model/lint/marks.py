"""Line numbers of a manifest's fields: PyYAML's composed nodes per document, in decode_documents' order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import yaml

Path = Sequence[str | int]


@dataclass(frozen=True)
class Marks:
    """One document's node tree; `line(path)` is the 1-based line of the deepest field of `path` present."""

    node: yaml.Node

    def line(self, path: Path = ()) -> int:
        node = self.node
        line = node.start_mark.line + 1
        for part in path:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                found = next(
                    ((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None
                )
                if found is None:
                    return line
                line, node = found[0].start_mark.line + 1, found[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "kind" and isinstance(value, yaml.ScalarNode):
                return str(value.value)
    return ""


def _items(node: yaml.MappingNode) -> list[yaml.Node]:
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "items" and isinstance(value, yaml.SequenceNode):
            return list(value.value)
    return []


def document_marks(text: str) -> list[Marks] | None:
    """Marks of every document, `kind: List` flattened as manifest.decode_documents does; None if unparsable."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    marks: list[Marks] = []
    for node in nodes:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
            continue
        if isinstance(node, yaml.MappingNode) and _kind(node) == "List":
            marks.extend(Marks(item) for item in _items(node))
        else:
            marks.append(Marks(node))
    return marks
