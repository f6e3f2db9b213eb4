"""`ekctl rollout status|history|undo|pause|resume|restart deploy/NAME` and `ekctl set image`: kubectl's rollout verbs.

Each change is made as kubectl makes it, on the client: read the Deployment, change its spec, apply it (undo
copies the chosen revision's ReplicaSet template, its `pod-template-hash` label removed, into the Deployment, as
kubectl's DeploymentRollbacker does). `rollout status` polls the Deployment and prints each new progress line.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from edgekube.cli import deployments
from edgekube.cli.context import Context
from edgekube.cli.kinds import DEPLOY, RS, require, split_args
from edgekube.model.errors import EdgekubeError, NotFoundError, ValidationError
from edgekube.model.types import Obj

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
POLL_SECONDS = 0.5


def _target(ctx: Context) -> str:
    res, names = split_args(ctx.resource_args)
    require(res, (DEPLOY,), f"rollout {ctx.args.rollout_command}" if hasattr(ctx.args, "rollout_command") else "set")
    if len(names) != 1:
        raise ValidationError("exactly one deployment name is required (deploy/NAME)")
    return names[0]


def _get(ctx: Context, name: str) -> Obj:
    return ctx.client().get(DEPLOY, ctx.namespace, name)


def _write(ctx: Context, obj: Obj) -> None:
    """Apply the changed Deployment (its status and server metadata are dropped by the master's apply)."""
    ctx.client().apply(json.dumps(obj))


def _change(ctx: Context, name: str, edit: Callable[[Obj], str | None]) -> int:
    """Read, let `edit` change the spec in place (it returns an error to refuse), write; print kubectl's line."""
    obj = copy.deepcopy(_get(ctx, name))
    refusal = edit(obj)
    if refusal is not None:
        raise ValidationError(f'{DEPLOY.qualified_plural} "{name}" {refusal}')
    _write(ctx, obj)
    return 0


def run_status(ctx: Context) -> int:
    name = _target(ctx)
    deadline = time.monotonic() + ctx.args.wait_timeout if ctx.args.wait_timeout else None
    last = ""
    while True:
        try:
            message, done = deployments.rollout_status(_get(ctx, name))
        except deployments.RolloutFailed as exc:
            raise EdgekubeError(str(exc)) from None
        if message != last:
            ctx.out.write(message + "\n")
            ctx.out.flush()
            last = message
        if done or not ctx.args.watch:
            return 0
        if deadline is not None and time.monotonic() > deadline:
            raise EdgekubeError(f"timed out waiting for the condition (deployment {name!r} not rolled out)")
        time.sleep(POLL_SECONDS)


def _replica_sets(ctx: Context, obj: Obj) -> list[Obj]:
    namespace = str(obj["metadata"].get("namespace") or ctx.namespace)
    return ctx.client().query(RS, namespace)


def run_history(ctx: Context) -> int:
    name = _target(ctx)
    obj = _get(ctx, name)
    replica_sets = _replica_sets(ctx, obj)
    wanted = ctx.args.revision
    if wanted:
        rs = deployments.template_of_revision(obj, replica_sets, wanted)
        if rs is None:
            raise NotFoundError(f"unable to find the specified revision {wanted}")
        template = deployments.without_hash(rs["spec"]["template"])
        ctx.out.write(f"{DEPLOY.qualified}/{name} with revision #{wanted}\n")
        ctx.out.write(deployments.describe_template(template))
        return 0
    rows = [("REVISION", "CHANGE-CAUSE"), *((str(r), cause) for r, cause in deployments.history(obj, replica_sets))]
    width = max(len(revision) for revision, _ in rows)
    ctx.out.write(f"{DEPLOY.qualified}/{name} \n")  # kubectl's tabbedString: padding 2
    ctx.out.write("".join(f"{revision:<{width}}  {cause}\n" for revision, cause in rows))
    return 0


def run_undo(ctx: Context) -> int:
    name = _target(ctx)
    obj = copy.deepcopy(_get(ctx, name))
    if obj["spec"].get("paused"):
        raise ValidationError(
            "you cannot rollback a paused deployment; resume it first with "
            f"'ekctl rollout resume deployment/{name}' and try again"
        )
    replica_sets = _replica_sets(ctx, obj)
    revisions = sorted({revision for revision, _ in deployments.history(obj, replica_sets)})
    wanted = ctx.args.to_revision
    if not wanted:
        if len(revisions) < 2:
            raise NotFoundError(f'no rollout history found for deployment "{name}"')
        wanted = revisions[-2]  # the previous revision
    rs = deployments.template_of_revision(obj, replica_sets, wanted)
    if rs is None:
        raise NotFoundError(f"unable to find specified revision {wanted} in history")
    template = deployments.without_hash(rs["spec"]["template"])
    if template == deployments.without_hash(obj["spec"]["template"]):
        ctx.out.write(
            f"{DEPLOY.qualified}/{name} skipped rollback (current template already matches revision {wanted})\n"
        )
        return 0
    obj["spec"]["template"] = template
    _write(ctx, obj)
    ctx.out.write(f"{DEPLOY.qualified}/{name} rolled back\n")
    return 0


def run_pause(ctx: Context) -> int:
    return _set_paused(ctx, True)


def run_resume(ctx: Context) -> int:
    return _set_paused(ctx, False)


def _set_paused(ctx: Context, paused: bool) -> int:
    """`rollout pause` (True) and `rollout resume` (False): kubectl's error when spec.paused is already so."""
    name = _target(ctx)

    def change(obj: Obj) -> str | None:
        if bool(obj["spec"].get("paused")) == paused:
            return "is already paused" if paused else "is not paused"
        obj["spec"]["paused"] = paused
        return None

    _change(ctx, name, change)
    ctx.out.write(f"{DEPLOY.qualified}/{name} {'paused' if paused else 'resumed'}\n")
    return 0


def run_restart(ctx: Context) -> int:
    name = _target(ctx)

    def restart(obj: Obj) -> str | None:
        if obj["spec"].get("paused"):
            return "can't restart paused deployment (run rollout resume first)"
        meta = obj["spec"]["template"].setdefault("metadata", {})
        annotations = meta.setdefault("annotations", {})
        annotations[RESTARTED_AT] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return None

    _change(ctx, name, restart)
    ctx.out.write(f"{DEPLOY.qualified}/{name} restarted\n")
    return 0


def run_set_image(ctx: Context) -> int:
    """`ekctl set image deploy/NAME CONTAINER=IMAGE...` (`*=IMAGE`: every container)."""
    target, *pairs = ctx.args.args
    res, names = split_args([target])
    require(res, (DEPLOY,), "set image")
    if len(names) != 1 or not pairs:
        raise ValidationError("set image needs deploy/NAME and at least one CONTAINER=IMAGE")
    images: dict[str, str] = {}
    for pair in pairs:
        container, sep, image = pair.partition("=")
        if not sep or not container or not image:
            raise ValidationError(f"{pair!r}: expected CONTAINER=IMAGE")
        images[container] = image
    name = names[0]

    def set_image(obj: Obj) -> str | None:
        spec = obj["spec"]["template"]["spec"]
        all_containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
        for container, image in images.items():
            matched = [c for c in all_containers if container in ("*", c.get("name"))]
            if not matched:
                raise ValidationError(f'unable to find container named "{container}"')
            for c in matched:
                c["image"] = image
        return None

    _change(ctx, name, set_image)
    ctx.out.write(f"{DEPLOY.qualified}/{name} image updated\n")
    return 0


_SUBCOMMANDS = {
    "status": run_status,
    "history": run_history,
    "undo": run_undo,
    "pause": run_pause,
    "resume": run_resume,
    "restart": run_restart,
}


def run(ctx: Context) -> int:
    """`ekctl rollout SUBCOMMAND deploy/NAME`."""
    return _SUBCOMMANDS[ctx.args.rollout_command](ctx)


def run_set(ctx: Context) -> int:
    """`ekctl set image ...` (the only `set` subcommand)."""
    return run_set_image(ctx)
