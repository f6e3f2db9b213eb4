"""The NFS share operations the provisioner needs (`ShareFs`), the jobs made of them, and a share-less stand-in.

master.wiring hands the master the real ShareFs (over edgekube.nfs); tests use an in-memory fake. Every job is
idempotent, so a job whose result was lost is simply run again: creating an existing directory, removing a
missing one and archiving an already archived one all succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from edgekube.model.errors import StorageError


@dataclass(frozen=True)
class Share:
    """An exported directory on an NFS server: `server`, its absolute `path` (the class's share), the NFS `port`."""

    server: str
    path: str
    port: int = 2049

    def address(self) -> str:
        """`server`, or `server:port` when the port is not 2049 (as node status and scheduler messages say it)."""
        return self.server if self.port == 2049 else f"{self.server}:{self.port}"


class ShareFs(Protocol):
    """Directory operations on a share; paths are relative to `share.path`; failures raise StorageError."""

    def makedirs(self, share: Share, path: str) -> None:
        """Create the directory and its parents; an existing one is fine."""
        ...

    def rmtree(self, share: Share, path: str) -> None:
        """Remove the directory and everything in it; a missing one is fine."""
        ...

    def rename(self, share: Share, old: str, new: str) -> None: ...

    def exists(self, share: Share, path: str) -> bool: ...


Operation = Literal["create", "remove", "archive"]


@dataclass(frozen=True)
class Job:
    """One unit of NFS work, named by `key` (one job per key at a time): create/remove/archive `directory`."""

    key: str
    share: Share
    operation: Operation
    directory: str

    def run(self, fs: ShareFs) -> None:
        if self.operation == "create":
            fs.makedirs(self.share, self.directory)
        elif self.operation == "remove":
            fs.rmtree(self.share, self.directory)
        else:
            archived = archived_name(self.directory)
            if fs.exists(self.share, self.directory):
                if fs.exists(self.share, archived):
                    fs.rmtree(self.share, archived)  # an older archive of the same name: the newer one wins
                fs.rename(self.share, self.directory, archived)


def archived_name(directory: str) -> str:
    """nfs-subdir-external-provisioner's name for a directory kept on delete (archiveOnDelete)."""
    return f"archived-{directory}"


class NoShareFs:
    """The stand-in when the master was built without an NFS client: every operation fails, saying so."""

    def _fail(self, share: Share) -> StorageError:
        return StorageError(
            f"nfs server {share.address()}: this master has no NFS client",
            hint="start the master through edgekube.master.wiring (it builds the NFS client)",
        )

    def makedirs(self, share: Share, path: str) -> None:
        raise self._fail(share)

    def rmtree(self, share: Share, path: str) -> None:
        raise self._fail(share)

    def rename(self, share: Share, old: str, new: str) -> None:
        raise self._fail(share)

    def exists(self, share: Share, path: str) -> bool:
        raise self._fail(share)
