"""`ekctl cp [-c C] POD:PATH LOCAL` and `ekctl cp [-c C] LOCAL POD:PATH`: files in and out of a container, as tar.

The master forwards the request to the pod's node; the agent reads or writes the container's files through Podman's
archive API (so, unlike kubectl cp, the image needs no tar). One copy carries at most 512 KiB of tar each way (one
message); what is unpacked here is checked first: no absolute paths, no `..`, no links out of the destination.
"""

from __future__ import annotations

import base64
import io
import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path

from edgekube.cli.cmd_logs import _default_container, _pod
from edgekube.cli.context import Context
from edgekube.model.errors import ValidationError
from edgekube.model.wire import ApiRequest, Verb

#: As the agent's limit (agent.app.MAX_CP_BYTES): refused here before anything is sent.
MAX_CP_BYTES = 512 * 1024


def split_remote(text: str) -> tuple[str, str] | None:
    """`pod:/path` → (pod, /path); None for a local path (kubectl's rule: a colon before any slash)."""
    head, colon, rest = text.partition(":")
    if not colon or "/" in head or not head:
        return None
    if not rest:
        raise ValidationError(f"cp: {text!r}: a path in the container is required after the colon")
    return head, rest


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Files and directories only (links are left out, not followed); an absolute or `..` entry is refused."""
    kept = []
    for member in tar.getmembers():
        if member.name.startswith("/") or ".." in Path(member.name).parts:
            raise ValidationError(f"cp: refusing the archive entry {member.name!r}: it would land outside the target")
        if member.isfile() or member.isdir():
            kept.append(member)
    return kept


def unpack(tar_bytes: bytes, source: str, dest: Path) -> None:
    """The archive's top entry (the source's last component) becomes `dest` (or goes inside it, if a directory)."""
    top = posixpath.basename(source.rstrip("/")) or "."
    target = dest / top if dest.is_dir() else dest
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        tar.extractall(scratch, members=_safe_members(tar))  # members checked: none lands outside `scratch`
        extracted = Path(scratch) / top
        if not extracted.exists():
            raise ValidationError(f"cp: the node's archive of {source} has no {top!r}")
        if target.is_dir() and extracted.is_dir():
            shutil.copytree(extracted, target, dirs_exist_ok=True)
        else:
            shutil.move(str(extracted), target)


def pack(local: Path, name: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.add(local, arcname=name)
    return out.getvalue()


def run(ctx: Context) -> int:
    args = ctx.args
    source, dest = split_remote(args.source), split_remote(args.dest)
    if (source is None) == (dest is None):
        raise ValidationError("cp: one of the paths must be POD:PATH and the other a local path")
    pod, remote = source if source is not None else dest or ("", "")
    container = args.container or _default_container(ctx, _pod(ctx, pod))
    client = ctx.client()
    if source is not None:
        request = ApiRequest(
            verb=Verb.CP, kind="Pod", namespace=ctx.namespace, name=pod, container=container, path=remote
        )
        text = client.stream_call(request).text or ""
        unpack(base64.b64decode(text), remote, Path(args.dest))
        return 0
    local = Path(args.source)
    if not local.exists():
        raise ValidationError(f"cp: {args.source}: no such file or directory")
    tar = pack(local, posixpath.basename(remote.rstrip("/")) or local.name)
    if len(tar) > MAX_CP_BYTES:
        raise ValidationError(
            f"cp: {args.source} is {len(tar)} bytes as tar, more than the {MAX_CP_BYTES} one copy carries"
        )
    directory = posixpath.dirname(remote.rstrip("/")) or "/"
    request = ApiRequest(
        verb=Verb.CP, kind="Pod", namespace=ctx.namespace, name=pod, container=container, path=directory,
        archive=base64.b64encode(tar).decode(),
    )  # fmt: skip
    client.stream_call(request)
    return 0
