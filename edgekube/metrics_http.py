"""The Prometheus `/metrics` endpoint of the agent and the master: one registry served over HTTP on one thread.

Started by each daemon's wiring when its `metrics_port` is set (off by default). The exposition is
prometheus_client's own (`make_wsgi_app`); scrapes are answered one after another on the server's single thread,
so a scrape never starts a thread and only reads what the daemon already holds in memory (its custom Collector).
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from edgekube.model.errors import ValidationError

log = logging.getLogger(__name__)

#: A client that connects and sends nothing gives up its turn after this many seconds.
REQUEST_TIMEOUT = 5.0


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds: not worth a log line
        pass


class MetricsServer:
    """Serves `registry` at http://address:port/metrics until stopped (port 0 picks a free port: tests)."""

    def __init__(self, registry: CollectorRegistry, address: str = "0.0.0.0", port: int = 0) -> None:
        self.registry = registry
        self.address = address
        self.requested_port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self.requested_port
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        """Bind and serve; a port that is taken or not allowed is a ValidationError naming the setting."""
        try:
            self._server = make_server(
                self.address, self.requested_port, make_wsgi_app(self.registry), WSGIServer, _QuietHandler
            )
        except OSError as exc:
            where = f"{self.address}:{self.requested_port}"
            raise ValidationError(f"metrics_port: cannot serve /metrics on {where}: {exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()
        log.info("serving Prometheus metrics on http://%s:%s/metrics", self.address, self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
