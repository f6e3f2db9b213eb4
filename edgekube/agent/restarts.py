"""Shared fate + restartPolicy as one pure decision: what happens to a pod when containers end; used by plan()."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from edgekube.agent.runtime.protocol import ContainerRunState, ObservedContainer
from edgekube.model.pod import RestartPolicy


class Verdict(StrEnum):
    KEEP = "Keep"  # nothing ended the pod: leave it running
    RESTART = "Restart"  # stop what still runs, then start the whole pod again (after back-off)
    SUCCEEDED = "Succeeded"  # every container exited 0 and the policy does not restart: the pod is done
    FAILED = "Failed"  # a container failed and the policy is Never: stop the rest, never restart


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    #: The containers that ended the pod (crashed, exited, failed liveness), in spec order; "" = the sandbox.
    culprits: tuple[str, ...] = ()
    why: str = ""


KEEP = Decision(Verdict.KEEP)


def _failed(container: ObservedContainer, unhealthy: frozenset[str]) -> bool:
    if container.name in unhealthy:
        return True  # killed for a failed liveness probe: a failure whatever code the process exits with
    return container.state is ContainerRunState.EXITED and container.exit_code != 0


def _why(container: ObservedContainer, unhealthy: frozenset[str], hook_failed: frozenset[str] = frozenset()) -> str:
    if container.name in hook_failed:
        return f"container {container.name} failed its postStart hook"
    if container.name in unhealthy:
        return f"container {container.name} failed its liveness probe"
    code = container.exit_code if container.exit_code is not None else -1
    return f"container {container.name} exited with code {code}"


def decide(
    policy: RestartPolicy,
    containers: Sequence[ObservedContainer],
    *,
    unhealthy: frozenset[str] = frozenset(),
    sandbox_running: bool = True,
    hook_failed: frozenset[str] = frozenset(),
) -> Decision:
    """The pod's fate from its containers' states (`unhealthy`: failed liveness) and its restart policy.

    `hook_failed`: containers whose postStart hook failed; they count as failed, as a failed liveness probe does.

    A pod is one unit: Always restarts it whenever a container ends; OnFailure when one fails (non-zero exit
    or liveness); Never fails it then. A container exiting 0 under OnFailure/Never ends only itself; when all
    have, the pod Succeeded. A stopped sandbox (node reboot, `podman pod stop`) killed every container: a
    failure, so Always/OnFailure restart and Never fails.
    """
    if not sandbox_running:
        if policy is RestartPolicy.NEVER:
            return Decision(Verdict.FAILED, ("",), "pod sandbox stopped")
        return Decision(Verdict.RESTART, ("",), "pod sandbox stopped")
    unhealthy |= hook_failed
    ended = [c for c in containers if c.state is ContainerRunState.EXITED or c.name in unhealthy]
    if not ended:
        return KEEP
    failed = [c for c in ended if _failed(c, unhealthy)]
    if policy is RestartPolicy.ALWAYS:
        first = failed or ended
        return Decision(Verdict.RESTART, tuple(c.name for c in first), _why(first[0], unhealthy, hook_failed))
    if failed:
        verdict = Verdict.RESTART if policy is RestartPolicy.ON_FAILURE else Verdict.FAILED
        return Decision(verdict, tuple(c.name for c in failed), _why(failed[0], unhealthy, hook_failed))
    if len(ended) == len(containers):
        return Decision(Verdict.SUCCEEDED, (), "all containers exited with code 0")
    return KEEP
