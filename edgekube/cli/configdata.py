"""What `ekctl get` and `ekctl describe` show of ConfigMaps and Secrets (kubectl's columns; secret values hidden)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from edgekube.cli.describe import Writer
from edgekube.cli.status import section
from edgekube.cli.timefmt import age
from edgekube.model.types import Obj

CONFIGMAP_HEADER = ["NAME", "DATA", "AGE"]
SECRET_HEADER = ["NAME", "TYPE", "DATA", "AGE"]


def _count(obj: Obj, *fields: str) -> int:
    return sum(len(section(obj, f)) for f in fields)


def configmap_row(cm: Obj, *, wide: bool, now: datetime | None = None) -> list[str]:
    """Port of kubectl's printConfigMap: DATA counts data and binaryData keys."""
    meta = section(cm, "metadata")
    return [str(meta.get("name", "")), str(_count(cm, "data", "binaryData")), age(meta.get("creationTimestamp"), now)]


def secret_row(secret: Obj, *, wide: bool, now: datetime | None = None) -> list[str]:
    """Port of kubectl's printSecret."""
    meta = section(secret, "metadata")
    return [
        str(meta.get("name", "")),
        str(secret.get("type") or "Opaque"),
        str(_count(secret, "data")),
        age(meta.get("creationTimestamp"), now),
    ]


def _b64_len(value: object) -> int:
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return 0


def _head(w: Writer, obj: Obj) -> None:
    meta = section(obj, "metadata")
    w.field(0, "Name", meta.get("name", ""))
    w.field(0, "Namespace", meta.get("namespace", ""))
    w.mapping(0, "Labels", section(meta, "labels"))
    w.mapping(0, "Annotations", section(meta, "annotations"), sep=": ")


def describe_configmap(cm: Obj, events: list[Obj] | None = None, now: datetime | None = None) -> str:
    """Port of kubectl's ConfigMapDescriber: every data value in full, binaryData as a byte count."""
    w = Writer()
    _head(w, cm)
    text = w.text()
    parts = ["", "Data", "===="]
    for key, value in sorted(section(cm, "data").items()):
        parts += [f"{key}:", "----", str(value)]
    parts += ["", "BinaryData", "===="]
    parts += [f"{key}: {_b64_len(value)} bytes" for key, value in sorted(section(cm, "binaryData").items())]
    tail = Writer()
    tail.events(events, now)
    return text + "\n".join(parts) + "\n\n" + tail.text()


def describe_secret(secret: Obj, events: list[Obj] | None = None, now: datetime | None = None) -> str:
    """Port of kubectl's SecretDescriber: values are never shown, only their size (`key:  N bytes`)."""
    w = Writer()
    _head(w, secret)
    w.line(0, "")
    w.field(0, "Type", secret.get("type") or "Opaque")
    w.line(0, "")
    w.line(0, "Data")
    w.line(0, "====")
    for key, value in sorted(section(secret, "data").items()):
        w.field(0, key, f"{_b64_len(value)} bytes")
    w.events(events, now)
    return w.text()
