"""`edgekube` command: runs the master or a node agent (systemd), and `up`/`down` of a local cluster."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tomllib
from pathlib import Path
from types import FrameType
from typing import Any

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


def _pick(args: argparse.Namespace, file: dict[str, Any], key: str, default: Any) -> Any:
    """Flag beats config file beats environment beats default."""
    value = getattr(args, key, None)
    if value is not None:
        return value
    if key in file:
        return file[key]
    env = os.environ.get(f"EDGEKUBE_{key.upper()}")
    return env if env is not None else default


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
    from edgekube.master.app import MasterConfig, run_master  # noqa: PLC0415 - keep `edgekube up` light

    file = _config_file(args.config)
    config = MasterConfig(
        mqtt_host=str(_pick(args, file, "mqtt_host", "127.0.0.1")),
        mqtt_port=int(_pick(args, file, "mqtt_port", 1883)),
        data_dir=Path(_pick(args, file, "data_dir", "/var/lib/edgekube/master")),
        node_timeout=float(_pick(args, file, "node_timeout", 4.0)),
    )
    run_master(config)
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from edgekube.agent.app import AgentConfig, run_agent  # noqa: PLC0415
    from edgekube.agent.runtime.podman import PodmanRuntime  # noqa: PLC0415
    from edgekube.model.names import NodeName  # noqa: PLC0415

    file = _config_file(args.config)
    labels = dict(file.get("labels", {}))
    labels.update(_labels(args.label or []))
    node = str(_pick(args, file, "node_name", os.uname().nodename.lower()))
    config = AgentConfig(
        node_name=node,
        mqtt_host=str(_pick(args, file, "mqtt_host", "127.0.0.1")),
        mqtt_port=int(_pick(args, file, "mqtt_port", 1883)),
        podman_url=str(_pick(args, file, "podman_url", "unix:///run/podman/podman.sock")),
        state_dir=Path(_pick(args, file, "state_dir", "/var/lib/edgekube/agent")),
        labels=labels,
        heartbeat_interval=float(_pick(args, file, "heartbeat_interval", 1.0)),
    )
    run_agent(config, PodmanRuntime(config.podman_url, NodeName(config.node_name)))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from edgekube.local.cluster import LocalCluster  # noqa: PLC0415

    LocalCluster.here().up(nodes=args.nodes, example=None if args.no_example else Path(args.example))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from edgekube.local.cluster import LocalCluster  # noqa: PLC0415

    LocalCluster.here().down()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgekube", description="edgekube daemons and local cluster")
    p.add_argument("--log-level", default=os.environ.get("EDGEKUBE_LOG_LEVEL", "INFO"))
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("master", help="run the master (state, API, scheduler, controllers)")
    m.add_argument("--config", help="TOML file (keys as the long options, with underscores)")
    m.add_argument("--mqtt-host", dest="mqtt_host")
    m.add_argument("--mqtt-port", dest="mqtt_port", type=int)
    m.add_argument("--data-dir", dest="data_dir")
    m.add_argument(
        "--node-timeout",
        dest="node_timeout",
        type=float,
        help="seconds without a heartbeat before a node is NotReady (default 4)",
    )
    m.set_defaults(func=cmd_master)

    a = sub.add_parser("agent", help="run a node agent (Podman)")
    a.add_argument("--config", help="TOML file (keys as the long options, with underscores; [labels] table)")
    a.add_argument("--node", dest="node_name", help="node name (default: hostname)")
    a.add_argument("--mqtt-host", dest="mqtt_host")
    a.add_argument("--mqtt-port", dest="mqtt_port", type=int)
    a.add_argument("--podman-url", dest="podman_url", help="e.g. unix:///run/podman/podman.sock")
    a.add_argument("--state-dir", dest="state_dir")
    a.add_argument("--label", action="append", help="node label KEY=VALUE (repeatable)")
    a.add_argument("--heartbeat-interval", dest="heartbeat_interval", type=float)
    a.set_defaults(func=cmd_agent)

    u = sub.add_parser("up", help="start a local cluster in ./.edgekube (Mosquitto, master, agents)")
    u.add_argument("--nodes", type=int, default=1)
    u.add_argument("--example", default="examples/hello-pod.yaml")
    u.add_argument("--no-example", action="store_true")
    u.set_defaults(func=cmd_up)

    d = sub.add_parser("down", help="stop the local cluster and remove everything it started")
    d.set_defaults(func=cmd_down)
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
