"""Carries out the reconcile plan's pod actions (create, remove, stop, restart) with back-off and events; for Agent."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from edgekube.agent.backoff import Backoff, BackoffPolicy, ImagePullBackoffPolicy
from edgekube.agent.configfiles import ConfigFiles
from edgekube.agent.devices import DeviceTable, assign, with_device_env
from edgekube.agent.events import EventRecorder, PodRef
from edgekube.agent.hooks import Hooks
from edgekube.agent.initactions import InitActions
from edgekube.agent.initplan import RestartContainer, StartContainers, StopSidecars
from edgekube.agent.ledger import RestartLedger
from edgekube.agent.localstorage import eviction_message, measured
from edgekube.agent.reconcile import (
    EVICTED,
    Action,
    Create,
    DesiredPod,
    Failure,
    Remove,
    Restart,
    Stop,
    terminated,
)
from edgekube.agent.restarts import Verdict
from edgekube.agent.runtime.protocol import (
    ERR_IMAGE_PULL,
    IMAGE_PULL_BACK_OFF,
    ContainerRunState,
    ImageFailure,
    ObservedPod,
    PodRuntime,
)
from edgekube.agent.runtime.sctp import SANDBOX_FAILED
from edgekube.agent.runtime.volumes import FAILED_MOUNT
from edgekube.model.config import WAIT_ENV, WAIT_VOLUME
from edgekube.model.errors import NotFoundError, RuntimeFailure
from edgekube.model.names import PodUID
from edgekube.model.pod import PullPolicy

log = logging.getLogger(__name__)

#: Create failures that mean the image could not be had (their back-off event says so).
_IMAGE_REASONS = frozenset({"ErrImagePull", "ImageNotFound", "ImagePullBackOff"})
#: Create failures that wait for a ConfigMap or Secret the master has not got yet.
_CONFIG_WAITS = frozenset({WAIT_VOLUME, WAIT_ENV})


@dataclass
class PendingRestart:
    """A pod stopped by shared fate, waiting for its back-off before it is started again."""

    culprit: str  # the container that ended it ("" = the sandbox)
    why: str
    retry_at: float
    delay: float
    last_state: dict[str, dict[str, Any]] = field(default_factory=dict)


def _ref(d: DesiredPod) -> PodRef:
    return PodRef(d.pod.metadata.namespace, d.pod.metadata.name, d.uid)


class PodActions:
    """Runs actions on the runtime (off the loop, one at a time per pod) and remembers their outcome.

    What it remembers — pods busy with a background operation, restarts waiting for their back-off, the last
    create failure, both back-offs — is read by the Agent to plan and report; `wake` is called whenever a
    background operation ends, so the loop looks again.
    """

    def __init__(
        self,
        runtime: PodRuntime,
        events: EventRecorder,
        ledger: RestartLedger,
        policy: BackoffPolicy,
        *,
        clock: Callable[[], float],
        wake: Callable[[], None],
        parallel_creates: int = 4,
        volume_check_interval: float = 10.0,
        devices: DeviceTable | None = None,
        config_files: ConfigFiles | None = None,
        image_policy: BackoffPolicy | None = None,
    ) -> None:
        self.runtime = runtime
        #: Where config volumes (ConfigMap, Secret, downward API) are written; None: pods using them wait.
        self.config_files = config_files
        self.events = events
        self.ledger = ledger
        self.clock = clock
        self._wake = wake
        self._restart_backoff: Backoff[PodUID] = Backoff(policy)
        self._create_backoff: Backoff[PodUID] = Backoff(policy)
        #: The kubelet's image back-off, per pod and image (memory only): a pod whose image cannot be had stays
        #: Pending and is retried (10 s doubling to 300 s); it starts at the first retry that finds the image.
        self._image_backoff: Backoff[tuple[PodUID, str]] = Backoff(image_policy or ImagePullBackoffPolicy())
        self._pull_shown: set[PodUID] = set()  # ErrImagePull reported once: ImagePullBackOff from now on
        self._lock = threading.Lock()  # guards _busy, _pending, _failures
        self._busy: set[PodUID] = set()  # a background stop/restart/removal is running for these pods
        self._pending: dict[PodUID, PendingRestart] = {}
        self._failures: dict[PodUID, Failure] = {}
        self._refs: dict[PodUID, PodRef] = {}  # pods whose image could not be had, for their back-off events
        #: Creates run off the loop too (a node taking over a dead node's pods creates them side by side), at most
        #: this many at once: Podman's parallelism ends where the board's cores do.
        self._creating = threading.BoundedSemaphore(parallel_creates)
        #: Disk emptyDirs with a sizeLimit are measured this often, on a thread of their own (du can take a while).
        self.volume_check_interval = volume_check_interval
        self._next_measure = 0.0
        self._measuring = False  # guarded by _lock
        #: The node's devices, and which ones each desired pod was given (kept until it is no longer desired, so a
        #: create in flight or retried holds them; a restarted agent reads them back from the containers).
        self.devices = devices
        self._devices_of: dict[PodUID, dict[str, list[str]]] = {}
        #: Single containers: init containers run in order, sidecars kept running, each with its own back-off.
        self.init = InitActions(
            runtime, events, ledger, policy, clock=clock, background=self._in_background,
            after_start=self._started, before_stop=self._sidecar_pre_stop,
        )  # fmt: skip
        #: Lifecycle hooks (postStart after starts, preStop before stops); containers whose postStart failed.
        self.hooks = Hooks(runtime, events)
        self._hook_failed: dict[PodUID, frozenset[str]] = {}

    # -- what the loop reads ------------------------------------------------------------------------------
    def busy(self) -> frozenset[PodUID]:
        with self._lock:
            return frozenset(self._busy)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no background stop, restart or removal is running; False if one still is."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._busy:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def waiting(self, now: float) -> frozenset[PodUID]:
        """Pods whose create failed and whose back-off has not passed yet."""
        creates = {u for u in self._create_backoff.tracked() if not self._create_backoff.due(u, now)}
        images = {k[0] for k in self._image_backoff.tracked() if not self._image_backoff.due(k, now)}
        return frozenset(creates | images)

    def pending(self, uid: PodUID) -> PendingRestart | None:
        with self._lock:
            return self._pending.get(uid)

    def hook_failed(self, uid: PodUID) -> frozenset[str]:
        """The pod's containers whose postStart hook failed since it last (re)started: they count as failed."""
        with self._lock:
            return self._hook_failed.get(uid, frozenset())

    def failures(self) -> dict[PodUID, Failure]:
        with self._lock:
            return dict(self._failures)

    def failures_to_report(self) -> dict[PodUID, Failure]:
        """The last create failure of each pod, for the loop pass's report (failures() changes nothing).

        An ErrImagePull is reported once (the kubelet's failed sync), then ImagePullBackOff until the next
        pull: its events are recorded then, and the loop is woken so the next report says so without waiting.
        """
        backing_off: list[PodUID] = []
        shown = False
        with self._lock:
            for uid, failure in self._failures.items():
                if failure.reason == ERR_IMAGE_PULL and uid in self._pull_shown:
                    back_off = f'Back-off pulling image "{failure.image}"'
                    self._failures[uid] = Failure(IMAGE_PULL_BACK_OFF, back_off, failure.image)
                    backing_off.append(uid)
                elif failure.reason == ERR_IMAGE_PULL:
                    self._pull_shown.add(uid)
                    shown = True
            out = dict(self._failures)
            refs = {uid: self._refs[uid] for uid in backing_off}
        for uid in backing_off:
            self.events.record(refs[uid], "BackOff", out[uid].message)
            self.events.record(refs[uid], "Failed", f"Error: {IMAGE_PULL_BACK_OFF}", "Warning")
        if shown:
            self._wake()
        return out

    def next_due(self, now: float) -> float | None:
        """When the earliest back-off ends (None if none is running)."""
        with self._lock:
            dues = [p.retry_at for p in self._pending.values()]
        dues += [now + self._create_backoff.remaining(u, now) for u in self._create_backoff.tracked()]
        dues += [now + self._image_backoff.remaining(k, now) for k in self._image_backoff.tracked()]
        dues += self.init.next_due()
        later = [d for d in dues if d > now]
        return min(later) if later else None

    def forget(self, wanted: set[PodUID]) -> None:
        """Drop what is remembered about pods no longer on this node."""
        with self._lock:
            for uid in [u for u in self._pending if u not in wanted]:
                del self._pending[uid]
            for uid in [u for u in self._failures if u not in wanted]:
                del self._failures[uid]
            self._pull_shown &= set(wanted)
            for uid in [u for u in self._refs if u not in wanted]:
                del self._refs[uid]
            for uid in [u for u in self._devices_of if u not in wanted]:
                del self._devices_of[uid]
            for uid in [u for u in self._hook_failed if u not in wanted]:
                del self._hook_failed[uid]
            keep = set(wanted) | self._busy  # a pod being removed loses its config files once it is gone
        if self.config_files is not None:
            self.config_files.sweep(keep)
        for backoff in (self._restart_backoff, self._create_backoff):
            for uid in backoff.tracked():
                if uid not in wanted:
                    backoff.forget(uid)
        for key in self._image_backoff.tracked():
            if key[0] not in wanted:
                self._image_backoff.forget(key)
        self.init.forget(wanted)

    # -- actions ------------------------------------------------------------------------------------------
    def apply(
        self,
        actions: Iterable[Action],
        wanted: Mapping[PodUID, DesiredPod],
        observed: Mapping[PodUID, ObservedPod],
        now: float,
        *,
        held: Mapping[PodUID, Collection[str]] | None = None,
    ) -> None:
        """Carry out a plan: `wanted` holds the desired pods, `observed` the pods Podman showed (not busy ones).

        `held`: the device nodes each pod on the runtime holds (all of Podman's pods, busy ones too).
        """
        for action in actions:
            if isinstance(action, Remove):
                self._remove(action, observed.get(action.uid))
            elif isinstance(action, Create):
                with self._lock:
                    removing = action.desired.uid in self._busy
                if removing:  # a replaced pod is created once its old version is gone
                    continue
                try:
                    devices = self._assign_devices(action.desired, held or {})
                except RuntimeFailure as exc:
                    self._create_failed(action.desired, exc)
                    continue
                work = functools.partial(self._create_limited, action, devices)
                self._in_background(action.desired.uid, "create", work)
            elif isinstance(action, Stop):
                self._stop_pod(action, wanted[action.uid], observed[action.uid], now)
            elif isinstance(action, (StartContainers, RestartContainer, StopSidecars)):
                self.init.apply(action, wanted[action.uid], observed[action.uid], now)
            else:
                self._restart(action, wanted[action.uid], now)
        self._sync_config(wanted, observed)

    def _sync_config(self, wanted: Mapping[PodUID, DesiredPod], observed: Mapping[PodUID, ObservedPod]) -> None:
        """New ConfigMap/Secret values reach running pods' files; a pod waiting for one is retried once it came."""
        if self.config_files is None:
            return
        running = [(uid, d.config) for uid, d in wanted.items() if uid in observed and d.config is not None]
        self.config_files.update_running(running)
        with self._lock:
            waiting = [u for u, f in self._failures.items() if f.reason in _CONFIG_WAITS and u not in observed]
        for uid in waiting:
            d = wanted.get(uid)
            if d is not None and d.config is not None and not d.config.waiting:
                self._create_backoff.forget(uid)  # what it waited for is there: no back-off delay
                self._wake()

    def _in_background(self, uid: PodUID, what: str, work: Callable[[], None]) -> None:
        """Run work off the loop, one operation at a time per pod, so the other pods go on meanwhile.

        Stops wait out grace periods; creates pull images and start containers.
        """
        with self._lock:
            self._busy.add(uid)

        def run() -> None:
            try:
                work()
            except Exception:
                log.exception("%s of pod %s failed; will retry", what, uid)
            finally:
                with self._lock:
                    self._busy.discard(uid)
                self._wake()

        threading.Thread(target=run, name=f"{what}-{uid[:8]}", daemon=True).start()

    def _remove(self, action: Remove, obs: ObservedPod | None = None) -> None:
        log.info("removing pod %s: %s", action.uid, action.reason)
        with self._lock:
            self._pending.pop(action.uid, None)
        self._restart_backoff.forget(action.uid)

        def remove() -> None:
            grace = action.grace_seconds
            if obs is not None:
                grace = self.hooks.pre_stop(PodRef(obs.namespace, obs.name, obs.uid), obs, grace)
                grace = self._sidecars_last(obs, grace)
            self.runtime.remove_pod(action.uid, grace)
            if self.config_files is not None:
                self.config_files.remove(action.uid)

        self._in_background(action.uid, "remove", remove)

    def _sidecars_last(self, obs: ObservedPod, grace: int) -> int:
        """A pod removed with sidecars that have preStop hooks, in the kubelet's order, within one grace period.

        The app containers are stopped first, then the sidecars' hooks run; returns the grace left for the
        sidecars' stop signal (remove_pod stops them last one first). Without such a sidecar: nothing, `grace`.
        """
        hooked = tuple(
            c for c in obs.init_containers if c.pre_stop is not None and c.state is ContainerRunState.RUNNING
        )
        if not hooked:
            return grace
        start = self.clock()
        apps = [c.name for c in obs.containers if c.state is ContainerRunState.RUNNING]
        if apps:
            self.runtime.stop_containers(obs.uid, apps, grace)
        left = max(grace - int(self.clock() - start), 0)
        return self.hooks.pre_stop(PodRef(obs.namespace, obs.name, obs.uid), replace(obs, containers=hooked), left)

    def _image_events(self, d: DesiredPod) -> list[str]:
        """Pulled ("already present") or Pulling per image, as the kubelet reports; returns the images to pull."""
        to_pull = []
        everyone = d.pod.spec.all_containers()
        for image in dict.fromkeys(c.image for c in everyone):
            policy = next(c for c in everyone if c.image == image).pull_policy()
            try:
                present = self.runtime.has_image(image)
            except RuntimeFailure:
                continue
            if present and policy is not PullPolicy.ALWAYS:
                self.events.record(_ref(d), "Pulled", f'Container image "{image}" already present on machine')
            elif policy is not PullPolicy.NEVER:
                self.events.record(_ref(d), "Pulling", f'Pulling image "{image}"')
                to_pull.append(image)
        return to_pull

    def _assign_devices(self, d: DesiredPod, held: Mapping[PodUID, Collection[str]]) -> dict[str, list[str]]:
        """The devices of the pod's extended resources (on the loop, so two creates never get the same one).

        Taken: what the pods on the runtime hold (their containers say), and what was given to pods not there yet
        (a create in flight, or failed and waiting to be retried).
        """
        if self.devices is None or not any(c.resources.extended() for c in d.pod.spec.all_containers()):
            return {}
        taken = {path for uid, paths in held.items() if uid != d.uid for path in paths}
        with self._lock:
            for uid, given in self._devices_of.items():
                if uid != d.uid and uid not in held:
                    taken.update(path for paths in given.values() for path in paths)
            previous = self._devices_of.get(d.uid)
        given = assign(d.pod, self.devices.advertised(), taken, previous)
        with self._lock:
            self._devices_of[d.uid] = given
        return given

    def _create_limited(self, action: Create, devices: Mapping[str, Sequence[str]] | None = None) -> None:
        with self._creating:
            created = self._create(action, devices)
        if created:  # outside the create slots: a slow postStart hook never holds back other pods' creates
            self._post_start(action.desired)

    def _create(self, action: Create, devices: Mapping[str, Sequence[str]] | None = None) -> bool:
        """Create and start the pod; False (the failure remembered, backed off) if it could not be."""
        d = action.desired
        meta = d.pod.metadata
        to_pull = self._image_events(d)
        try:
            if d.config is not None:
                if self.config_files is None:
                    raise RuntimeFailure("this agent has no directory for config volumes", reason=FAILED_MOUNT)
                with_config = self.config_files.prepare(d.pod, d.uid, d.config)
                if devices and self.devices is not None:
                    with_config = with_device_env(with_config, devices, self.devices.advertised())
                # imagePullSecrets' registry entries, only for a pod that has some (never logged: secret values).
                pulls: dict[str, Any] = {"credentials": d.config.pull_credentials} if d.config.pull_credentials else {}
                self._pull_secrets_missing(d)
                if devices:
                    self.runtime.create_pod(with_config, d.uid, d.spec_hash, d.volumes, devices=devices, **pulls)
                else:
                    self.runtime.create_pod(with_config, d.uid, d.spec_hash, d.volumes, **pulls)
            elif devices and self.devices is not None:
                pod = with_device_env(d.pod, devices, self.devices.advertised())
                self.runtime.create_pod(pod, d.uid, d.spec_hash, d.volumes, devices=devices)
            else:  # the common case, in the call every runtime (and test double) has always taken
                self.runtime.create_pod(d.pod, d.uid, d.spec_hash, d.volumes)
        except RuntimeFailure as exc:
            self._create_failed(d, exc)
            return False
        self._create_backoff.forget(d.uid)
        for key in [k for k in self._image_backoff.tracked() if k[0] == d.uid]:
            self._image_backoff.forget(key)
        with self._lock:
            self._failures.pop(d.uid, None)
            self._pull_shown.discard(d.uid)
        for image in to_pull:
            self.events.record(_ref(d), "Pulled", f'Successfully pulled image "{image}"')
        for c in d.pod.spec.all_containers():
            self.events.record(_ref(d), "Created", f"Created container {c.name}")
        for c in [] if d.pod.spec.init_containers else d.pod.spec.containers:  # else: started by self.init
            self.events.record(_ref(d), "Started", f"Started container {c.name}")
        log.info("started pod %s/%s", meta.namespace, meta.name)
        return True

    def _pull_secrets_missing(self, d: DesiredPod) -> None:
        """The kubelet's warning for imagePullSecrets naming no Secret: the pull is tried anyway."""
        missing = d.config.pull_secrets_missing if d.config is not None else None
        if missing:
            message = (
                f"Unable to retrieve some image pull secrets ({', '.join(missing)}); attempting to pull the image "
                "may not succeed."
            )
            self.events.record(_ref(d), "FailedToRetrieveImagePullSecret", message, "Warning")

    def _create_failed(self, d: DesiredPod, exc: RuntimeFailure) -> None:
        """Remember why a create failed, say so in events, and back off before the next try."""
        if isinstance(exc, ImageFailure):
            self._image_failed(d, exc)
            return
        meta = d.pod.metadata
        delay = self._create_backoff.failed(d.uid, self.clock())
        with self._lock:
            self._failures[d.uid] = Failure(exc.failure, str(exc))
        if exc.failure == FAILED_MOUNT:
            # The kubelet's event: `MountVolume.SetUp failed for volume "x" : why`; retried by the back-off.
            self.events.record(_ref(d), FAILED_MOUNT, str(exc), "Warning")
        elif exc.failure == SANDBOX_FAILED:  # the pod's network cannot be set up (an SCTP hostPort without SCTP)
            self.events.record(_ref(d), SANDBOX_FAILED, str(exc), "Warning")
        elif exc.failure == WAIT_ENV:  # the kubelet's words: `Error: secret "x" not found`
            self.events.record(_ref(d), "Failed", f"Error: {exc}", "Warning")
        else:
            self.events.record(_ref(d), "Failed", f"Error: {exc.failure}: {exc}", "Warning")
        if delay > 0 and exc.failure not in (FAILED_MOUNT, WAIT_ENV):
            what = "pulling image" if exc.failure in _IMAGE_REASONS else "creating pod"
            self.events.record(_ref(d), "BackOff", f"Back-off {what} ({exc.failure})", "Warning")
        log.warning("pod %s/%s failed (%s), retry in %gs: %s", meta.namespace, meta.name, exc.failure, delay, exc)

    def _image_failed(self, d: DesiredPod, exc: ImageFailure) -> None:
        """The kubelet's image pull failure: the pod stays Pending, retried after the image back-off.

        ErrImagePull: events `Failed to pull image "x": why` and `Error: ErrImagePull`, then (failures())
        ImagePullBackOff; ErrImageNeverPull (absent, policy Never) keeps its reason and message.
        """
        meta = d.pod.metadata
        delay = self._image_backoff.failed((d.uid, exc.image), self.clock())
        with self._lock:
            self._refs[d.uid] = _ref(d)
            self._failures[d.uid] = Failure(exc.failure, str(exc), exc.image)
            self._pull_shown.discard(d.uid)
        if exc.failure == ERR_IMAGE_PULL:
            self.events.record(_ref(d), "Failed", f'Failed to pull image "{exc.image}": {exc.detail}', "Warning")
        else:
            self.events.record(_ref(d), exc.failure, str(exc), "Warning")
        self.events.record(_ref(d), "Failed", f"Error: {exc.failure}", "Warning")
        log.warning("pod %s/%s: %s, retry in %gs: %s", meta.namespace, meta.name, exc.failure, delay, exc)

    def _stop_pod(self, action: Stop, d: DesiredPod, obs: ObservedPod, now: float) -> None:
        """Shared fate: stop the rest of the pod now; restart it after its back-off, or mark it finished."""
        decision = action.decision
        verdict = decision.verdict
        for c in obs.containers:
            if c.state is not ContainerRunState.RUNNING:
                continue
            if c.name in self.hook_failed(d.uid):
                message = "FailedPostStartHook"  # the kubelet's Killing message for it
            elif c.name in decision.culprits:
                then = "will be restarted" if verdict is Verdict.RESTART else "the pod fails (restartPolicy Never)"
                message = f"Container {c.name} failed liveness probe, {then}"
            else:
                message = f"Stopping container {c.name}: {decision.why}"
            self.events.record(_ref(d), "Killing", message)
        if verdict is Verdict.RESTART:
            delay = self._restart_backoff.failed(d.uid, now)
            culprit = decision.culprits[0] if decision.culprits else ""
            with self._lock:
                self._pending[d.uid] = PendingRestart(culprit, decision.why, now + delay, delay)
            if delay > 0:
                failed = f"container {culprit}" if culprit else "pod sandbox"
                where = f"{d.pod.metadata.namespace}/{d.pod.metadata.name}"
                self.events.record(_ref(d), "BackOff", f"Back-off restarting failed {failed} in pod {where}", "Warning")
            log.info("pod %s/%s: %s; restart in %gs", d.pod.metadata.namespace, d.pod.metadata.name, decision.why,
                     delay)  # fmt: skip
        else:
            log.info("pod %s/%s %s: %s", d.pod.metadata.namespace, d.pod.metadata.name, verdict.value, decision.why)

        def work() -> None:
            try:
                self.runtime.stop_pod(d.uid, self.hooks.pre_stop(_ref(d), obs, action.grace_seconds))
            except NotFoundError:
                return
            after = next((p for p in self.runtime.list_pods() if p.uid == d.uid), None)
            if after is None:
                return
            last = {
                c.name: {"terminated": terminated(c)} for c in after.containers if c.state is ContainerRunState.EXITED
            }
            if verdict is Verdict.RESTART:
                with self._lock:
                    pending = self._pending.get(d.uid)
                    if pending is not None:
                        pending.last_state = last
                if pending is not None and pending.delay == 0:
                    self._restart_now(d, pending, action.grace_seconds)  # no back-off: no need to wait for the loop
            else:
                self.ledger.finished(d.uid, after.pod_id, verdict.value, decision.why)

        self._in_background(d.uid, "stop", work)

    def _restart(self, action: Restart, d: DesiredPod, now: float) -> None:
        with self._lock:
            pending = self._pending.get(d.uid)
        if pending is not None:
            self._in_background(d.uid, "restart", lambda: self._restart_now(d, pending, action.grace_seconds))

    def _restart_now(self, d: DesiredPod, pending: PendingRestart, grace_seconds: int) -> None:
        """Start the pod again (on a background thread); count it on disk, or back off if it cannot start."""
        try:
            restarted = self.runtime.restart_pod(d.uid, grace_seconds)
        except NotFoundError:
            with self._lock:
                self._pending.pop(d.uid, None)
            return
        except RuntimeFailure as exc:
            at = self.clock()
            delay = self._restart_backoff.failed(d.uid, at)
            pending.retry_at, pending.delay = at + delay, delay
            self.events.record(_ref(d), "Failed", f"Error: {exc.failure}: {exc}", "Warning")
            return
        self.ledger.restarted(d.uid, restarted.pod_id, [c.name for c in restarted.containers], pending.last_state)
        self._restart_backoff.retried(d.uid, self.clock())
        with self._lock:
            self._pending.pop(d.uid, None)
        for c in restarted.containers:
            self.events.record(_ref(d), "Started", f"Started container {c.name}")
        self._post_start(d, restarted)
        log.info("restarted pod %s/%s (%s)", d.pod.metadata.namespace, d.pod.metadata.name, pending.why)

    def _started(self, d: DesiredPod, names: Sequence[str], observed: ObservedPod) -> None:
        """The postStart hooks of containers self.init started: the app containers' run as after a create.

        A sidecar whose hook failed is stopped, so restarted with back-off as any exited sidecar (the kubelet kills it).
        """
        sidecars = [
            c for c in d.pod.spec.init_containers or []
            if c.name in names and c.lifecycle is not None and c.lifecycle.post_start is not None
        ]  # fmt: skip
        if sidecars:
            failed = self.hooks.post_start(_ref(d), sidecars, replace(observed, containers=observed.init_containers))
            if failed:
                self.runtime.stop_containers(d.uid, sorted(failed), d.pod.spec.termination_grace_period_seconds)
        if any(c.name in names for c in d.pod.spec.containers):
            self._post_start(d, observed)

    def _sidecar_pre_stop(self, d: DesiredPod, observed: ObservedPod, names: Sequence[str], grace: int) -> int:
        """The preStop hooks of the named sidecars (self.init stops them); the grace left for their stop signal."""
        chosen = tuple(c for c in observed.init_containers if c.name in names)
        return self.hooks.pre_stop(_ref(d), replace(observed, containers=chosen), grace)

    def _post_start(self, d: DesiredPod, observed: ObservedPod | None = None) -> None:
        """Run the pod's postStart hooks after a (re)start; a container whose hook failed counts as failed."""
        with self._lock:
            self._hook_failed.pop(d.uid, None)
        containers = [c for c in d.pod.spec.containers if c.lifecycle is not None and c.lifecycle.post_start]
        if not containers:
            return
        if observed is None:
            observed = next((p for p in self.runtime.list_pods() if p.uid == d.uid), None)
            if observed is None:
                return
        failed = self.hooks.post_start(_ref(d), containers, observed)
        if failed:
            with self._lock:
                self._hook_failed[d.uid] = failed

    # -- emptyDir sizeLimit (the kubelet's local-storage eviction) ------------------------------------------
    def measure_volumes(self, desired: Sequence[DesiredPod], now: float) -> None:
        """Every volume_check_interval, off the loop: measure the pods local-storage eviction holds to a limit.

        Disk emptyDirs with a sizeLimit (tmpfs ones are held to it by the tmpfs size) and pods with ephemeral-storage
        limits (agent.localstorage): a running pod over a limit is evicted, as the kubelet's eviction manager does.
        """
        with self._lock:
            evicted = {u for u, f in self._failures.items() if f.reason == EVICTED}
            if self._measuring or now < self._next_measure:
                return
            candidates = [d for d in desired if d.uid not in evicted and measured(d.pod)]
            if not candidates:
                return
            self._measuring = True
        self._next_measure = now + self.volume_check_interval

        def run() -> None:
            try:
                self._measure(candidates)
            except Exception:
                log.exception("measuring local storage (emptyDirs, containers) failed; will retry")
            finally:
                with self._lock:
                    self._measuring = False

        threading.Thread(target=run, name="volume-usage", daemon=True).start()

    def _measure(self, candidates: list[DesiredPod]) -> None:
        pods = self.runtime.list_pods()
        running = {p.uid: p for p in pods if any(c.state is ContainerRunState.RUNNING for c in p.containers)}
        for d in candidates:
            observed = running.get(d.uid)
            if observed is None:
                continue  # not started yet, stopped or finished: nothing writes to its volumes
            try:
                usage = self.runtime.volume_usage(d.uid)
                message = eviction_message(d.pod, usage, functools.partial(self.runtime.container_usage, d.uid))
            except RuntimeFailure as exc:
                log.warning("cannot measure the local storage of pod %s: %s", d.uid, exc)
                continue
            if message is not None:
                self._evict(d, observed, message)

    def evict(self, d: DesiredPod, observed: ObservedPod, message: str) -> None:
        """Node pressure (agent.health): the same eviction as an emptyDir over its sizeLimit, with the given text."""
        self._evict(d, observed, message)

    def _evict(self, d: DesiredPod, observed: ObservedPod, message: str) -> None:
        """Stop the pod at once and mark it Failed (Evicted) for good, as the kubelet's eviction manager does."""
        with self._lock:
            if d.uid in self._busy:
                return  # being stopped, restarted or removed already: the next measurement decides
            self._busy.add(d.uid)
            self._failures[d.uid] = Failure(EVICTED, message)
            self._pending.pop(d.uid, None)
        try:
            meta = d.pod.metadata
            log.warning("evicting pod %s/%s: %s", meta.namespace, meta.name, message)
            self.events.record(_ref(d), EVICTED, message, "Warning")
            try:
                self.runtime.stop_pod(d.uid, 0)
            except NotFoundError:
                return
            self.ledger.finished(d.uid, observed.pod_id, "Failed", message)
        finally:
            with self._lock:
                self._busy.discard(d.uid)
            self._wake()
