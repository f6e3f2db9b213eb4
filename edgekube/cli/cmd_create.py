"""`ekctl create -f FILE` and `ekctl create configmap|secret generic NAME --from-literal|--from-file|--from-env-file`.

`create -f` (kubectl create -f): every object of the files is created, never updated: one that exists is an
`already exists` error; one with only `metadata.generateName` is named by the master, so creating it twice makes
two objects (`ekctl apply` refuses those, as kubectl apply does).

As kubectl create: keys from literals (`k=v`), files (`[key=]path`; a directory gives one key per regular file whose
name is a valid key) and env files (`KEY=VALUE` lines, `#` comments); a key given twice is an error; a ConfigMap
keeps UTF-8 files in `data` and the rest in `binaryData`, a Secret base64-encodes everything into `data`. The
object is validated locally, refused if it exists, then applied.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgekube.cli import output
from edgekube.cli.client import Client
from edgekube.cli.context import Context
from edgekube.cli.errors import report
from edgekube.cli.kinds import CM, SECRET, Resource, for_kind
from edgekube.cli.manifests import load_sources
from edgekube.cli.status import section
from edgekube.model.config import encode_value, key_problems
from edgekube.model.errors import BusError, ConflictError, EdgekubeError, NotFoundError, ValidationError
from edgekube.model.manifest import decode_documents, parse_object


def _add(entries: dict[str, bytes], key: str, value: bytes, what: str) -> None:
    problems = key_problems(key)
    if problems:
        raise ValidationError(f'"{key}" is not a valid key name for a {what}: {problems[0]}')
    if key in entries:
        raise ValidationError(f'cannot add key "{key}", another key by that name already exists in data for {what}')
    entries[key] = value


def _literal(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValidationError(f"invalid literal source {text}, expected key=value")
    return key, value


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"error reading {path}: {exc.strerror}") from None


def _from_file(entries: dict[str, bytes], spec: str, what: str) -> None:
    key, sep, source = spec.partition("=")
    if not sep:
        key, source = "", spec
    elif not key or not source:
        raise ValidationError(f"key names or file paths cannot be empty: {spec!r}")
    path = Path(source)
    if path.is_dir():
        if key:
            raise ValidationError(f"cannot give a key name for a directory path: {spec!r}")
        for child in sorted(path.iterdir()):
            if child.is_file() and not key_problems(child.name):
                _add(entries, child.name, _read(child), what)
        return
    _add(entries, key or path.name, _read(path), what)


def _from_env_file(entries: dict[str, bytes], path: str, what: str) -> None:
    text = _read(Path(path)).decode("utf-8", "replace")
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:  # kubectl: a bare name takes its value from the environment
            value = os.environ.get(key, "")
        if not key or " " in key:
            raise ValidationError(f"{path}:{number}: invalid env line {raw!r}, expected KEY=VALUE")
        _add(entries, key, value.encode("utf-8"), what)


def _entries(ctx: Context, what: str) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    for literal in ctx.args.from_literal or ():
        key, value = _literal(literal)
        _add(entries, key, value.encode("utf-8"), what)
    for spec in ctx.args.from_file or ():
        _from_file(entries, spec, what)
    for path in ctx.args.from_env_file or ():
        _from_env_file(entries, path, what)
    return entries


def build(kind: str, name: str, namespace: str, entries: dict[str, bytes], secret_type: str = "") -> dict[str, Any]:
    """The object `create` sends, validated as the master will validate it."""
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}}
    if kind == "Secret":
        obj["type"] = secret_type or "Opaque"
        obj["data"] = {k: encode_value(v) for k, v in entries.items()}
    else:
        data, binary = {}, {}
        for key, value in entries.items():
            try:
                data[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                binary[key] = encode_value(value)
        obj["data"] = data
        if binary:
            obj["binaryData"] = binary
    parse_object(obj, source=f"{kind.lower()}/{name}")
    return obj


def create_files(ctx: Context) -> int:
    """`create -f`: validate every file first, then one create per object, in order; 1 if any failed."""
    sources = load_sources(ctx.args.filename, ctx.stdin())
    client = ctx.client()
    failed = 0
    for source, documents in sources:
        raw = decode_documents(source.data, source=source.name)
        for doc in documents:
            obj = doc.obj.to_dict()
            res = for_kind(obj["kind"])
            meta = obj["metadata"]
            if res.namespaced:  # validation defaulted it; the raw text tells whether -n applies
                meta["namespace"] = section(raw[doc.index], "metadata").get("namespace") or ctx.namespace
            try:
                if meta.get("name"):
                    _refuse_existing(client, res, meta["namespace"] if res.namespaced else "", meta["name"])
                outcomes = client.apply(json.dumps(obj))
            except BusError:
                raise
            except EdgekubeError as exc:
                report(ctx.err, exc)
                failed += 1
                continue
            for outcome in outcomes:
                ctx.out.write(f"{for_kind(outcome.kind).qualified}/{outcome.name} created\n")
    return 1 if failed else 0


def _refuse_existing(client: Client, res: Resource, namespace: str, name: str) -> None:
    try:
        client.get(res, namespace, name)
    except NotFoundError:
        return
    raise ConflictError(f'{res.qualified_plural} "{name}" already exists', hint="use `ekctl apply` to change it")


def run(ctx: Context) -> int:
    if getattr(ctx.args, "filename", None):
        return create_files(ctx)
    if not getattr(ctx.args, "create_kind", None):
        raise ValidationError("must specify one of -f and -k", hint="or: ekctl create configmap|secret NAME ...")
    res: Resource = CM if ctx.args.create_kind == "configmap" else SECRET
    what = f'{res.kind} "{ctx.args.name}"'
    obj = build(res.kind, ctx.args.name, ctx.namespace, _entries(ctx, what), getattr(ctx.args, "type", "") or "")
    if ctx.args.dry_run not in (None, "none", "client"):
        raise ValidationError(f"--dry-run: Unsupported value: {ctx.args.dry_run!r}: supported values: none, client")
    if ctx.args.dry_run == "client":
        if ctx.args.output == "yaml":
            ctx.out.write(output.to_yaml(obj))
        elif ctx.args.output == "json":
            ctx.out.write(output.to_json(obj))
        else:
            ctx.out.write(f"{res.qualified}/{ctx.args.name} created (dry run)\n")
        return 0
    client = ctx.client()
    try:
        client.get(res, ctx.namespace, ctx.args.name)
    except NotFoundError:
        pass
    else:
        raise ConflictError(f'{res.plural} "{ctx.args.name}" already exists', hint="use `ekctl apply` to change it")
    client.apply(json.dumps(obj))
    ctx.out.write(f"{res.qualified}/{ctx.args.name} created\n")
    return 0
