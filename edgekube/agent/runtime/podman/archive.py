"""Copying files in and out of a container for PodmanRuntime (`ekctl cp`): libpod's archive API, tar both ways.

Called by PodmanRuntime.copy_from / copy_to. Podman reads and writes the container's filesystem itself, so the
image needs no tar (kubectl cp needs one in the container); a copy out is refused past `limit` bytes of tar.
"""

from __future__ import annotations

import http.client

from edgekube.agent.runtime.podman.observe import Observer
from edgekube.agent.runtime.podman.transport import PodmanTransport, raise_http
from edgekube.agent.runtime.protocol import LABEL_CONTAINER
from edgekube.model.errors import NotFoundError, RuntimeFailure, ValidationError
from edgekube.model.names import PodUID


def _container_id(observer: Observer, uid: PodUID, container: str) -> str:
    found = observer.containers(uid, **{LABEL_CONTAINER: container})
    if not found:
        raise NotFoundError(f"container {container!r} of pod {uid} not found on node {observer.node}")
    return str(found[0]["Id"])


def copy_from(
    transport: PodmanTransport, observer: Observer, uid: PodUID, container: str, *, path: str, limit: int
) -> bytes:
    what = f"copy {path} from {container}"
    response = transport.request(
        "get", f"/containers/{_container_id(observer, uid, container)}/archive", what=what, params={"path": path},
        stream=True,
    )  # fmt: skip
    try:
        if response.status_code == 404:
            raise NotFoundError(f"{path}: no such file or directory in container {container!r}")
        if response.status_code >= 400:
            raise_http(response, what, "CopyError")
        data = bytearray()
        for chunk in response.iter_content(chunk_size=65536):
            data += chunk
            if len(data) > limit:
                raise ValidationError(f"cp: {path} is more than the {limit} bytes (as tar) one copy carries")
        return bytes(data)
    except (OSError, http.client.HTTPException) as exc:
        raise RuntimeFailure(f"{what}: {exc}", reason="CopyError") from None
    finally:
        response.close()


def copy_to(
    transport: PodmanTransport, observer: Observer, uid: PodUID, container: str, *, directory: str, tar: bytes
) -> None:
    what = f"copy into {directory} of {container}"
    response = transport.request(
        "put", f"/containers/{_container_id(observer, uid, container)}/archive", what=what,
        params={"path": directory}, payload=tar,
    )  # fmt: skip
    if response.status_code == 404:
        raise NotFoundError(f"{directory}: no such directory in container {container!r}")
    if response.status_code >= 400:
        raise_http(response, what, "CopyError")
