"""The real ShareFs (controllers.volumes.nfsio) over edgekube.nfs: one NfsClient per operation, with a timeout.

Runs only on the master's volume worker thread. Removing a missing directory succeeds (jobs are idempotent).
"""

from __future__ import annotations

from edgekube.master.controllers.volumes.nfsio import Share
from edgekube.nfs.client import NfsClient
from edgekube.nfs.target import NfsTarget


class NfsShareFs:
    """Each call connects to the share's server, does one thing, and disconnects; StorageError when it cannot."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    def _client(self, share: Share) -> NfsClient:
        return NfsClient(NfsTarget(share.server, share.path, share.port), timeout=self.timeout)

    def makedirs(self, share: Share, path: str) -> None:
        with self._client(share) as client:
            client.makedirs(path)

    def rmtree(self, share: Share, path: str) -> None:
        with self._client(share) as client:
            if client.exists(path):
                client.rmtree(path)

    def rename(self, share: Share, old: str, new: str) -> None:
        with self._client(share) as client:
            client.rename(old, new)

    def exists(self, share: Share, path: str) -> bool:
        with self._client(share) as client:
            return client.exists(path)
