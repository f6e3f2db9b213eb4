"""Where the broker is and how to prove who we are: flags, else EDGEKUBE_* variables, else .edgekube/cluster.json.

Each of host, port and the TLS files (--tls-ca/--tls-cert/--tls-key, EDGEKUBE_TLS_CA/CERT/KEY, cluster.json's
tls_ca/tls_cert/tls_key, relative to the file's directory) is resolved on its own, and the winner's origin is
kept so that a connection error can say where a wrong address came from. The file is read only when flags and
environment leave the host or the port to it.

A cluster with two masters has a broker beside each (docs/ha.md): `--broker HOST:PORT` (repeatable),
EDGEKUBE_BROKERS (comma-separated) or the file's `brokers` list name them in failover order; a list given
replaces host and port (its first broker is the preferred one, the others are fallbacks).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekube.bus.brokers import Broker
from edgekube.bus.brokers import resolve as resolve_brokers
from edgekube.model.errors import ValidationError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1883
ENV_HOST = "EDGEKUBE_MQTT_HOST"
ENV_PORT = "EDGEKUBE_MQTT_PORT"
ENV_BROKERS = "EDGEKUBE_BROKERS"
#: TLS setting -> its environment variable (the cluster file's key is the setting's name).
ENV_TLS = {"tls_ca": "EDGEKUBE_TLS_CA", "tls_cert": "EDGEKUBE_TLS_CERT", "tls_key": "EDGEKUBE_TLS_KEY"}
CLUSTER_FILE = Path(".edgekube") / "cluster.json"
_FILE_HINT = "the local cluster launcher writes it; delete it or run `make up` again"


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    #: Where host and port came from, for error messages: "--mqtt-port", "/repo/.edgekube/cluster.json"...
    origin: str
    #: PEM files for TLS; all empty: plain TCP.
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    #: Brokers tried after host:port, in order, when it cannot be reached or is lost (a two-master cluster).
    fallbacks: tuple[Broker, ...] = ()

    @property
    def brokers(self) -> tuple[Broker, ...]:
        return (Broker(self.host, self.port), *self.fallbacks)


def find_cluster_file(start: Path) -> Path | None:
    """`.edgekube/cluster.json` in `start` or its nearest parent that has one."""
    for directory in (start, *start.parents):
        candidate = directory / CLUSTER_FILE
        if candidate.is_file():
            return candidate
    return None


def _port(value: Any, origin: str) -> int:
    number = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    # bool is an int in Python, but `true` is never a port.
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
        raise ValidationError(f"{origin}: MQTT port {value!r}: must be an integer between 1 and 65535")
    return number


def _host(value: Any, origin: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{origin}: MQTT host {value!r}: must be a non-empty host name or address")
    return value.strip()


def read_cluster_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"{path}: cannot read the cluster file: {exc}", hint=_FILE_HINT) from None
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: must hold a JSON object with mqtt_host, mqtt_port", hint=_FILE_HINT)
    return data


def _broker_list(value: Any, origin: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(b, str) for b in value):
        raise ValidationError(f'{origin}: brokers {value!r}: must be a non-empty list of "HOST:PORT" strings')
    return value


def _tls_path(value: Any, origin: str, key: str, base: Path | None) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{origin}: {key} {value!r}: must be a file path (a string)")
    if value and base is not None and not Path(value).is_absolute():
        return str(base / value)
    return value


def resolve(
    host: str | None,
    port: int | None,
    environ: Mapping[str, str],
    cwd: Path,
    *,
    tls: Mapping[str, str | None] | None = None,
    brokers: Sequence[str] | None = None,
) -> Connection:
    """Resolve each setting by precedence: flag, environment, cluster file, built-in default.

    `tls` holds the flags' values by setting name (tls_ca, tls_cert, tls_key); None or absent: not given.
    `brokers` are the `--broker` flags (None or empty: not given).
    """
    flags = dict(tls or {})
    file_data: dict[str, Any] = {}
    file_path: Path | None = None
    listed: tuple[Sequence[str] | str, str] | None = None
    if brokers:
        listed = brokers, "--broker"
    elif environ.get(ENV_BROKERS):
        listed = environ[ENV_BROKERS], ENV_BROKERS
    host_given = host is not None or bool(environ.get(ENV_HOST))
    port_given = port is not None or bool(environ.get(ENV_PORT))
    # The file is read only when it names the broker: TLS files made for the local cluster are no use elsewhere.
    if listed is None and not (host_given and port_given):
        file_path = find_cluster_file(cwd)
        if file_path is not None:
            file_data = read_cluster_file(file_path)
            if not host_given and not port_given and "brokers" in file_data:
                listed = _broker_list(file_data["brokers"], str(file_path)), str(file_path)

    def pick(flag: object, flag_name: str, env_name: str, key: str, default: object) -> tuple[object, str]:
        if flag is not None:
            return flag, flag_name
        if environ.get(env_name):
            return environ[env_name], env_name
        if key in file_data:
            return file_data[key], str(file_path)
        return default, "default"

    raw_host, host_origin = pick(host, "--mqtt-host", ENV_HOST, "mqtt_host", DEFAULT_HOST)
    raw_port, port_origin = pick(port, "--mqtt-port", ENV_PORT, "mqtt_port", DEFAULT_PORT)
    files: dict[str, str] = {}
    for key, env in ENV_TLS.items():
        raw, origin = pick(flags.get(key), "--" + key.replace("_", "-"), env, key, "")
        base = file_path.parent if origin == str(file_path) and file_path is not None else None
        files[key] = _tls_path(raw, origin, key, base)
    tls_files = (files["tls_ca"], files["tls_cert"], files["tls_key"])
    if listed is not None:
        value, origin = listed
        first, *rest = resolve_brokers(value, DEFAULT_HOST, DEFAULT_PORT, what=origin)
        return Connection(first.host, first.port, origin, *tls_files, fallbacks=tuple(rest))
    origins = list(dict.fromkeys(o for o in (host_origin, port_origin) if o != "default"))
    host_text, port_number = _host(raw_host, host_origin), _port(raw_port, port_origin)
    return Connection(host_text, port_number, ", ".join(origins) or "defaults", *tls_files)
