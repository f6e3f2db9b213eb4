"""Image presence and pulls on Podman, for PodmanRuntime's create step (imagePullPolicy) and has_image."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
from collections.abc import Sequence

from edgekube.agent.runtime.podman.transport import PodmanTransport, message, raise_http
from edgekube.agent.runtime.protocol import ImageFailure, never_pull
from edgekube.model.errors import RuntimeFailure
from edgekube.model.names import NodeName
from edgekube.model.registryauth import RegistryCredential, lookup


def image_exists(transport: PodmanTransport, image: str) -> bool:
    response = transport.request("get", f"/images/{image}/exists", what=f"check image {image}")
    if response.status_code == 204:
        return True
    if response.status_code == 404:
        return False
    raise_http(response, f"check image {image}", "ErrImagePull")


def not_present(image: str, node: NodeName) -> ImageFailure:
    """The kubelet's ErrImageNeverPull (`node`: kept for the callers; the kubelet's message names no node)."""
    return never_pull(image)


def pull(
    transport: PodmanTransport, image: str, timeout: float, credentials: Sequence[RegistryCredential] = ()
) -> None:
    """`POST /images/pull`; any failure is ImageFailure ErrImagePull (libpod reports it inside a 200 progress stream).

    `credentials`: the pod's image pull Secrets' entries; those matching the image (registryauth.lookup, most
    specific first) are tried in turn, as the kubelet does, until one pull succeeds; none matching: anonymous.
    """
    tries = lookup(image, credentials)
    if not tries:
        _pull(transport, image, timeout, None)
        return
    failures: list[RuntimeFailure] = []
    for credential in tries:
        try:
            _pull(transport, image, timeout, credential)
            return
        except RuntimeFailure as exc:
            failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    raise ImageFailure(image, "; ".join(f.detail if isinstance(f, ImageFailure) else str(f) for f in failures))


def auth_header(credential: RegistryCredential) -> str:
    """The X-Registry-Auth header libpod reads: base64url of the JSON auth config (podman-py's encode_auth_header)."""
    config = {"username": credential.username, "password": credential.password}
    return base64.urlsafe_b64encode(json.dumps(config).encode()).decode()


def _pull(transport: PodmanTransport, image: str, timeout: float, credential: RegistryCredential | None) -> None:
    what = f"pull image {image}"
    params = {"reference": image, "policy": "always", "quiet": "false"}
    headers = {"X-Registry-Auth": auth_header(credential)} if credential is not None else None
    try:
        response = transport.request(
            "post", "/images/pull", what=what, params=params, timeout=(5.0, timeout), stream=True, headers=headers
        )
    except RuntimeFailure as exc:
        raise ImageFailure(image, str(exc)) from exc
    if response.status_code >= 400:
        raise ImageFailure(image, message(response))
    error: str | None = None
    pulled = False
    try:
        for line in response.iter_lines():
            if not line:
                continue
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    error = item.get("error") or error
                    pulled = pulled or bool(item.get("id") or item.get("images"))
    except (OSError, http.client.HTTPException) as exc:
        raise ImageFailure(image, f"no answer within {timeout}s ({exc})") from exc
    finally:
        response.close()
    if error or not pulled:
        detail = error or "podman reported no image"
        raise ImageFailure(image, detail)
