"""exec in a running container for PodmanRuntime (exec probes): create, start attached, read the exit code."""

from __future__ import annotations

import http.client
import time

from edgekube.agent.runtime.podman.naming import run_state
from edgekube.agent.runtime.podman.observe import Observer
from edgekube.agent.runtime.podman.transport import PodmanTransport, demux, raise_http
from edgekube.agent.runtime.protocol import LABEL_CONTAINER, MAX_EXEC_OUTPUT, ContainerRunState
from edgekube.model.errors import NotFoundError, RuntimeFailure
from edgekube.model.names import PodUID


class Executor:
    """Runs commands as `podman exec` does; a command that outlives its timeout is never started twice at once."""

    def __init__(self, transport: PodmanTransport, observer: Observer) -> None:
        self.transport = transport
        self.observer = observer
        #: exec sessions that outlived their timeout, per (uid, container, command): never more than one each.
        self._hung: dict[tuple[str, str, tuple[str, ...]], str] = {}

    def retain(self, uids: set[str]) -> None:
        """Forget hung sessions of pods that are gone."""
        self._hung = {k: v for k, v in self._hung.items() if k[0] in uids}

    def exec(
        self, uid: PodUID, container: str, command: list[str], timeout: float, max_output: int = MAX_EXEC_OUTPUT
    ) -> tuple[int, str]:
        """Create an exec session, start it attached, then inspect it for the exit code (as `podman exec`)."""
        what = f"exec {command[:1]} in {container} of pod {uid}"
        found = self.observer.containers(uid, **{LABEL_CONTAINER: container})
        if not found:
            raise NotFoundError(f"container {container!r} of pod {uid} not found on node {self.observer.node}")
        entry = found[0]
        if run_state(entry.get("State")) is not ContainerRunState.RUNNING:
            raise RuntimeFailure(f"{what}: container is not running", reason="ContainerNotRunning")
        key = (str(uid), container, tuple(command))
        hung = self._hung.get(key)
        if hung is not None:
            # Podman cannot kill an exec session: never pile up another copy of a command that hangs.
            state = self.transport.json("get", f"/exec/{hung}/json", what=what, ok_missing=True) or {}
            if state.get("Running"):
                raise RuntimeFailure(f"{what}: the previous run has not finished yet", reason="Timeout")
            self._hung.pop(key, None)
        body = {"Cmd": command, "AttachStdout": True, "AttachStderr": True}
        created = self.transport.json(
            "post", f"/containers/{entry['Id']}/exec", what=what, reason="ExecError", body=body
        )
        exec_id = str(created["Id"])
        output = self._output(exec_id, what, timeout, max_output)
        if output is None:
            self._hung[key] = exec_id
            raise RuntimeFailure(f"{what}: timed out after {timeout:g}s", reason="Timeout")
        deadline = time.monotonic() + 2.0
        while True:  # the stream can end a moment before Podman records the exit code
            state = self.transport.json("get", f"/exec/{exec_id}/json", what=what, reason="ExecError") or {}
            if not state.get("Running") or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        return int(state.get("ExitCode") or 0), output

    def _output(self, exec_id: str, what: str, timeout: float, max_output: int) -> str | None:
        """Run the exec session attached and collect its output; None if it did not end within `timeout`."""
        deadline = time.monotonic() + timeout
        try:
            response = self.transport.request(
                "post", f"/exec/{exec_id}/start", what=what, body={"Detach": False, "Tty": False},
                timeout=(5.0, timeout), stream=True,
            )  # fmt: skip
        except RuntimeFailure as exc:
            if exc.failure == "Timeout":
                return None
            raise
        try:
            if response.status_code >= 400:
                raise_http(response, what, "ExecError")
            chunks = bytearray()
            for chunk in response.iter_content(chunk_size=4096):
                if len(chunks) < 4 * max_output:
                    chunks += chunk
                if time.monotonic() > deadline:
                    return None
        except (OSError, http.client.HTTPException):
            return None  # a read timed out: the command is still running
        finally:
            response.close()
        return demux(bytes(chunks)).decode("utf-8", errors="replace")[:max_output]
