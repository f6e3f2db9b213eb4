"""What every command gets: parsed arguments, output streams and a lazily connected API client."""

from __future__ import annotations

import argparse
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from edgekube.cli import config

if TYPE_CHECKING:
    from edgekube.cli.client import Client, Connector

DEFAULT_NAMESPACE = "default"


def stdin_bytes() -> BinaryIO:
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        return buffer  # type: ignore[no-any-return]
    # A text-only stdin (e.g. replaced in tests) is re-encoded; manifests are UTF-8 either way.
    return io.BytesIO(sys.stdin.read().encode("utf-8"))


@dataclass
class Context:
    args: argparse.Namespace
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    #: None: the real MQTT connection (edgekube.cli.client, with paho and the wire models, loaded on first use).
    connector: Connector | None = None
    _client: Client | None = None

    @property
    def namespace(self) -> str:
        return str(self.args.namespace or DEFAULT_NAMESPACE)

    @property
    def namespace_given(self) -> bool:
        return self.args.namespace is not None

    @property
    def timeout(self) -> float:
        return float(self.args.timeout)

    @property
    def resource_args(self) -> list[str]:
        """TYPE and NAMEs as one list, the form kinds.split_args reads."""
        names = [str(n) for n in getattr(self.args, "names", [])]
        kind = getattr(self.args, "type", None)
        return [str(kind), *names] if kind else names

    def stdin(self) -> BinaryIO:
        return stdin_bytes()

    def client(self) -> Client:
        """Return the API client; settings are resolved (and the broker dialled) only when first needed."""
        if self._client is None:
            from edgekube.cli.client import Client, connect  # noqa: PLC0415 - commands that never connect skip it

            tls = {key: getattr(self.args, key, None) for key in config.ENV_TLS}
            connection = config.resolve(
                self.args.mqtt_host, self.args.mqtt_port, os.environ, Path.cwd(), tls=tls,
                brokers=getattr(self.args, "broker", None),
            )  # fmt: skip
            self._client = Client((self.connector or connect)(connection, self.timeout))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
