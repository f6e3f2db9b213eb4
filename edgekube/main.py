"""`edgekube` command: the master or an agent (systemd), `doctor`, `firmware apply`, `up`/`down` of a local cluster."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from types import FrameType
from typing import Any, get_type_hints

from edgekube.model.errors import EdgekubeError, ValidationError


def _config_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ValidationError(f"--config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"--config {path}: invalid TOML: {exc}") from None


_MISSING = object()
_SCALARS: dict[Any, Callable[[Any], Any]] = {int: int, float: float, str: str, Path: Path, bool: bool}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValidationError(f"{value!r}: not a boolean (use true or false)")


def _convert(name: str, kind: Any, value: Any) -> Any:
    if kind == list[str] and isinstance(value, str):  # from the environment: EDGEKUBE_BROKERS=a:1883,b:1883
        return [item.strip() for item in value.split(",") if item.strip()]
    convert = _to_bool if kind is bool else _SCALARS.get(kind)
    if convert is None:
        return value
    try:
        return convert(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: {value!r}: expected {kind.__name__} ({exc})") from None


def _pick(args: argparse.Namespace, file: dict[str, Any], key: str) -> Any:
    """Flag beats config file beats environment (EDGEKUBE_<KEY>) beats the config class's default."""
    value = getattr(args, key, None)
    if value is not None:
        return value
    if key in file:
        return file[key]
    return os.environ.get(f"EDGEKUBE_{key.upper()}", _MISSING)


def _add_config_flags(parser: argparse.ArgumentParser, cls: type[Any], skip: set[str]) -> None:
    """One `--long-option` per scalar field of the config dataclass, so a new setting is a flag at once."""
    hints = get_type_hints(cls)
    for f in fields(cls):
        if f.name in skip or hints[f.name] not in _SCALARS:
            continue
        factory: Any = f.default_factory
        default = f.default if f.default is not MISSING else factory()
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=_to_bool if hints[f.name] is bool else _SCALARS[hints[f.name]],
            help=f"default: {default}".replace("%", "%%"),  # argparse formats help with %: eviction_hard has 10%
        )


def _build(cls: type[Any], args: argparse.Namespace, file: dict[str, Any], **fixed: Any) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(file) - names)
    if unknown:
        raise ValidationError(f"--config: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in fixed:
            continue
        value = _pick(args, file, f.name)
        if value is not _MISSING:
            kwargs[f.name] = _convert(f.name, hints[f.name], value)
    return cls(**kwargs, **fixed)


def _labels(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValidationError(f"--label {pair!r}: must be KEY=VALUE")
        out[key] = value
    return out


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def cmd_master(args: argparse.Namespace) -> int:
    from edgekube.master.config import MasterConfig  # noqa: PLC0415 - keep `edgekube up` light
    from edgekube.master.wiring import run_master  # noqa: PLC0415

    run_master(_build(MasterConfig, args, _config_file(args.config)))
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from edgekube.agent.app import AgentConfig  # noqa: PLC0415
    from edgekube.agent.wiring import run_agent  # noqa: PLC0415

    file = _config_file(args.config)
    labels = dict(file.pop("labels", {}))
    labels.update(_labels(args.label or []))
    node = _pick(args, file, "node_name")
    config = _build(
        AgentConfig, args, file, labels=labels, node_name=str(node if node is not _MISSING else socket.gethostname())
    )
    run_agent(config)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from edgekube.agent.app import AgentConfig  # noqa: PLC0415
    from edgekube.bus.brokers import resolve  # noqa: PLC0415
    from edgekube.bus.tls import TlsFiles  # noqa: PLC0415
    from edgekube.doctor.report import Settings, doctor  # noqa: PLC0415
    from edgekube.master.config import MasterConfig  # noqa: PLC0415

    file = _config_file(args.config)
    settings, error = Settings(role=args.role), None
    try:
        if args.role == "master":
            master = _build(MasterConfig, args, file)
            state_dir, podman_url = master.data_dir, ""
        else:
            file.pop("labels", None)
            node = _pick(args, file, "node_name")
            agent = _build(AgentConfig, args, file, labels={}, node_name=str(node if node is not _MISSING else "node"))
            state_dir, podman_url = agent.state_dir, agent.podman_url
            master = agent
        settings = Settings(
            role=args.role, mqtt_host=master.mqtt_host, mqtt_port=master.mqtt_port,
            brokers=tuple(map(str, resolve(master.brokers, master.mqtt_host, master.mqtt_port, what="brokers"))),
            tls=TlsFiles(master.tls_ca, master.tls_cert, master.tls_key), podman_url=podman_url,
            state_dir=Path(state_dir), root=Path(args.root), broker_timeout=args.timeout,
        )  # fmt: skip
    except EdgekubeError as exc:
        error = str(exc)
        settings = Settings(role=args.role, root=Path(args.root))
    return doctor(settings, as_json=args.json, config_error=error)


def cmd_up(args: argparse.Namespace) -> int:
    from edgekube.local.cluster import LocalCluster  # noqa: PLC0415

    example = None if args.no_example else Path(args.example)
    LocalCluster.here().up(
        nodes=args.nodes, example=example, secure=not args.insecure, masters=args.masters, network=args.network
    )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from edgekube.local.cluster import LocalCluster  # noqa: PLC0415

    LocalCluster.here().down()
    return 0


_BROKER_HELP = (
    "an MQTT broker of the cluster (repeatable, in failover order; default: --mqtt-host/--mqtt-port; "
    "env EDGEKUBE_BROKERS=HOST:PORT,...)"
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgekube", description="edgekube daemons and local cluster")
    p.add_argument("--log-level", default=os.environ.get("EDGEKUBE_LOG_LEVEL", "INFO"))
    sub = p.add_subparsers(dest="command", required=True)

    from edgekube.agent.app import AgentConfig  # noqa: PLC0415
    from edgekube.master.config import MasterConfig  # noqa: PLC0415

    m = sub.add_parser("master", help="run the master (state, API, scheduler, controllers)")
    m.add_argument("--config", help="TOML file; keys as the long options with underscores (env: EDGEKUBE_<KEY>)")
    _add_config_flags(m, MasterConfig, skip=set())
    m.add_argument("--broker", dest="brokers", action="append", metavar="HOST:PORT", help=_BROKER_HELP)
    m.set_defaults(func=cmd_master)

    a = sub.add_parser("agent", help="run a node agent (Podman)")
    a.add_argument("--config", help="TOML file; keys as the long options with underscores, [labels] table")
    a.add_argument("--node", dest="node_name", help="node name (default: the hostname)")
    a.add_argument("--label", action="append", help="node label KEY=VALUE (repeatable)")
    _add_config_flags(a, AgentConfig, skip={"node_name"})
    a.add_argument("--broker", dest="brokers", action="append", metavar="HOST:PORT", help=_BROKER_HELP)
    a.set_defaults(func=cmd_agent)

    doc = sub.add_parser(
        "doctor",
        help="check this board has what a node or master needs; exit 0 all pass, 1 a failure, 2 warnings only",
    )
    doc.add_argument("--role", choices=("node", "master"), default="node")
    doc.add_argument("--config", help="the agent's (or master's) TOML config file: broker, TLS, podman_url, state dir")
    doc.add_argument("--podman-url", dest="podman_url", help="the Podman API socket (default: the config's)")
    doc.add_argument("--json", action="store_true", help="the report as JSON")
    doc.add_argument("--timeout", type=float, default=5.0, help="seconds the broker has to accept the connection")
    doc.add_argument("--root", default="/", help=argparse.SUPPRESS)  # tests: a tree laid out like /proc, /sys, /dev
    doc.set_defaults(func=cmd_doctor)

    u = sub.add_parser("up", help="start a local cluster in ./.edgekube (Mosquitto, master, agents)")
    u.add_argument("--nodes", type=int, default=1)
    u.add_argument("--masters", type=int, default=1, help="2: two brokers, an active and a standby master (docs/ha.md)")
    u.add_argument(
        "--network",
        choices=("host", "pod"),
        default="host",
        help="pod: each agent in its own network namespace with the pod network on, Services across nodes (root)",
    )
    u.add_argument("--example", default="examples/hello-pod.yaml")
    u.add_argument("--no-example", action="store_true")
    mode = u.add_mutually_exclusive_group()
    mode.add_argument(
        "--secure",
        action="store_false",
        dest="insecure",
        help="TLS with a certificate per node, the master and an admin (.edgekube/pki), ACL and CRL (the default)",
    )
    mode.add_argument("--insecure", action="store_true", help="plain MQTT, anyone may publish anything")
    u.set_defaults(insecure=False)
    u.set_defaults(func=cmd_up)

    d = sub.add_parser("down", help="stop the local cluster and remove everything it started")
    d.set_defaults(func=cmd_down)

    from edgekube.security.command import add_parser as add_ca  # noqa: PLC0415

    add_ca(sub)
    from edgekube.firmware.command import add_parser as add_firmware  # noqa: PLC0415

    add_firmware(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args))
    except EdgekubeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
