"""Pi hardware as extended resources (/dev, config); for the agent's reporter (capacity) and PodActions (assignment).

Device nodes found in /dev, or configured, are advertised in the Node's capacity and handed to containers.

The assignment is kept by the containers themselves (Podman label io.edgekube.devices, ObservedContainer.devices),
so a restarted agent knows which devices are taken without a file of its own; a new pod gets the first free
devices in path order (docs/devices.md).
"""

from __future__ import annotations

import stat
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from edgekube.agent.runtime.protocol import ObservedPod
from edgekube.model.errors import RuntimeFailure, ValidationError
from edgekube.model.pod import Container, EnvVar, Pod
from edgekube.model.resources import GPIOCHIP, I2C, SERIAL, SPI, VIDEO, is_extended

#: Device node name patterns (in /dev) of each resource the agent discovers.
PATTERNS: dict[str, tuple[str, ...]] = {
    GPIOCHIP: ("gpiochip*",),
    I2C: ("i2c-*",),
    SPI: ("spidev*",),
    SERIAL: ("ttyAMA*", "ttyS*", "ttyUSB*", "ttyACM*", "serial*"),
    VIDEO: ("video*",),
}
#: The kubelet's reason when a pod admitted by the scheduler cannot get its devices on the node.
UNEXPECTED_ADMISSION = "UnexpectedAdmissionError"


def _char_device(path: Path) -> int | None:
    """The device number of a character device (following links), None for anything else."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_rdev if stat.S_ISCHR(info.st_mode) else None


def discover(dev: Path) -> dict[str, list[str]]:
    """The character devices under `dev` per resource, sorted; a link (serial0 → ttyAMA0) never counts twice."""
    found: dict[str, list[str]] = {}
    for resource, patterns in PATTERNS.items():
        seen: dict[int, Path] = {}
        candidates = sorted({p for pattern in patterns for p in dev.glob(pattern)}, key=lambda p: (p.is_symlink(), p))
        for path in candidates:
            rdev = _char_device(path)
            if rdev is not None and rdev not in seen:
                seen[rdev] = path
        if seen:
            found[resource] = sorted(str(p) for p in seen.values())
    return found


def check_overrides(table: object, field: str = "devices") -> dict[str, list[str]]:
    """The agent config's `[devices]` table: extended resource name → absolute device paths; else a field error."""
    if not isinstance(table, Mapping):
        raise ValidationError(f'{field}: must be a table of resource = ["/dev/path", ...] (e.g. "{SERIAL}")')
    out: dict[str, list[str]] = {}
    for name, paths in table.items():
        where = f"{field}[{name}]"
        if not isinstance(name, str) or not is_extended(name):
            raise ValidationError(f"{where}: must be an extended resource name such as {SERIAL}")
        if not isinstance(paths, list | tuple) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
            raise ValidationError(f"{where}: must be a list of absolute device paths")
        if len(set(paths)) != len(paths):
            raise ValidationError(f"{where}: a device is listed twice")
        out[name] = list(paths)
    return out


class DeviceTable:
    """What this node advertises: the devices discovered in `dev` (none if empty), with configured overrides.

    An override replaces what was discovered for its resource (an empty list hides the resource). Read again on
    every call: cheap (a few directory listings), and a USB serial adapter plugged in shows up on the next report.
    """

    def __init__(self, dev: str | Path = "/dev", overrides: Mapping[str, Sequence[str]] | None = None) -> None:
        self.dev = Path(dev) if str(dev) else None
        self.overrides = {k: list(v) for k, v in (overrides or {}).items()}

    def advertised(self) -> dict[str, list[str]]:
        found = discover(self.dev) if self.dev is not None else {}
        found.update(self.overrides)
        return {name: paths for name, paths in sorted(found.items()) if paths}

    def capacity(self) -> dict[str, str]:
        """The extended resources for node.status.capacity and allocatable: `{"edgekube.io/serial": "2"}`."""
        return {name: str(len(paths)) for name, paths in self.advertised().items()}


def devices_of(pod: ObservedPod) -> tuple[str, ...]:
    """Every device node the containers of an observed pod have mapped (init containers' too)."""
    return tuple(dict.fromkeys(path for c in (*pod.init_containers, *pod.containers) for path in c.devices))


def assign(
    pod: Pod,
    advertised: Mapping[str, Sequence[str]],
    taken: Collection[str],
    previous: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[str]]:
    """The device paths each container of `pod` gets for its extended resources, by container name.

    Free devices (not in `taken`) in path order; `previous` (the pod's earlier assignment) is kept while all of it
    is still advertised, so a retried create maps the same devices. Raises RuntimeFailure UnexpectedAdmissionError
    (the kubelet's words) when the node has too few free: the master counted them, so it is a race or a device
    that vanished.

    Init containers first, in order, as the device manager allocates: a regular init container's devices are
    reusable by the containers after it (it has exited by then), a sidecar's are not (it runs beside them), which
    is what the scheduler's effective request (the largest init step, or the sum of the rest) counted.
    """
    everyone = pod.spec.all_containers()
    wanted = {c.name: c.resources.extended() for c in everyone}
    wanted = {name: ext for name, ext in wanted.items() if ext}
    if not wanted:
        return {}
    if previous is not None and _still_fits(wanted, previous, advertised):
        return {name: list(paths) for name, paths in previous.items() if name in wanted}
    free = {resource: [p for p in paths if p not in taken] for resource, paths in advertised.items()}
    reusable: dict[str, list[str]] = {}
    regular_init = {c.name for c in pod.spec.init_containers or [] if c.restart_policy != "Always"}
    out: dict[str, list[str]] = {}
    for container in [c.name for c in everyone if c.name in wanted]:
        for resource, count in sorted(wanted[container].items()):
            available = reusable.get(resource, []) + free.get(resource, [])
            if count > len(available):
                raise RuntimeFailure(
                    f"Allocate failed due to requested number of devices unavailable for {resource}. "
                    f"Requested: {count}, Available: {len(available)}, which is unexpected",
                    reason=UNEXPECTED_ADMISSION,
                )
            given = available[:count]
            out.setdefault(container, []).extend(given)
            reusable[resource] = [p for p in reusable.get(resource, []) if p not in given]
            free[resource] = [p for p in free.get(resource, []) if p not in given]
            if container in regular_init:
                reusable[resource] = sorted({*reusable[resource], *given})
    return out


def _still_fits(
    wanted: Mapping[str, Mapping[str, int]],
    previous: Mapping[str, Sequence[str]],
    advertised: Mapping[str, Sequence[str]],
) -> bool:
    owner = {path: resource for resource, paths in advertised.items() for path in paths}
    for container, requests in wanted.items():
        have: dict[str, int] = {}
        for path in previous.get(container, ()):
            if path not in owner:
                return False
            have[owner[path]] = have.get(owner[path], 0) + 1
        if have != dict(requests):
            return False
    return True


def env_name(resource: str) -> str:
    """The variable that tells a container its devices: edgekube.io/serial → EDGEKUBE_DEVICES_SERIAL."""
    name = resource.rpartition("/")[2]
    return "EDGEKUBE_DEVICES_" + "".join(c if c.isalnum() else "_" for c in name.upper())


def with_device_env(pod: Pod, given: Mapping[str, Sequence[str]], advertised: Mapping[str, Sequence[str]]) -> Pod:
    """`pod` with each container told its device paths per resource (as a device plugin's Allocate envs do).

    `EDGEKUBE_DEVICES_SERIAL=/dev/ttyUSB0` (comma-separated when several): a pod asking for one of three serial
    ports learns which one it got. The spec hash is the desired pod's, so nothing is recreated for it.
    """
    owner = {path: resource for resource, paths in advertised.items() for path in paths}

    def told(container: Container) -> Container:
        per_resource: dict[str, list[str]] = {}
        for path in given.get(container.name, ()):
            per_resource.setdefault(env_name(owner.get(path, "unknown")), []).append(path)
        extra = [EnvVar(name=k, value=",".join(v)) for k, v in sorted(per_resource.items())]
        return container.model_copy(update={"env": [*container.env, *extra]}) if extra else container

    update: dict[str, object] = {"containers": [told(c) for c in pod.spec.containers]}
    if pod.spec.init_containers:
        update["init_containers"] = [told(c) for c in pod.spec.init_containers]
    return pod.model_copy(update={"spec": pod.spec.model_copy(update=update)})
