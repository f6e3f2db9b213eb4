"""NfsTarget: which NFS server, port and export path a volume lives on (from a PV's nfs source and mountOptions)."""

from __future__ import annotations

import posixpath
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from edgekube.model.errors import StorageError

__all__ = ["DEFAULT_PORT", "NfsTarget"]

DEFAULT_PORT = 2049


def _clean_path(path: str) -> str:
    if not path.startswith("/"):
        raise StorageError(f"nfs path {path!r} is not absolute", hint="an NFS export path starts with '/'")
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts:
        raise StorageError(f"nfs path {path!r} contains '..'")
    return "/" + "/".join(parts)


@dataclass(frozen=True)
class NfsTarget:
    """A directory on an NFSv4 server: `server` (host or IP), absolute `path` on it, TCP `port` of its NFS service."""

    server: str
    path: str
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if not self.server or any(c in self.server for c in "/?#@ "):
            raise StorageError(f"nfs server {self.server!r} is not a host name or an IP address")
        if not 0 < self.port < 65536:
            raise StorageError(f"nfs port {self.port} is out of range")
        object.__setattr__(self, "path", _clean_path(self.path))

    @classmethod
    def from_source(cls, server: str, path: str, mount_options: Sequence[str] = ()) -> NfsTarget:
        """The target of a Kubernetes `nfs:` volume source; `port=N` in mount options sets the port, others are ignored.

        Options may be given one per item or comma-separated in one item (both forms occur in PV specs).
        """
        port = DEFAULT_PORT
        for item in mount_options:
            for option in item.split(","):
                key, _, value = option.strip().partition("=")
                if key.strip() == "port":
                    try:
                        port = int(value.strip())
                    except ValueError:
                        raise StorageError(f"nfs mount option {option.strip()!r}: the port is not a number") from None
        return cls(server.strip(), path, port)

    @classmethod
    def parse(cls, source: str) -> NfsTarget:
        """The target named by `nfs://server[:port]/path` (what source_of() and the mount helper use)."""
        parsed = urllib.parse.urlsplit(source)
        if parsed.scheme != "nfs" or not parsed.hostname:
            raise StorageError(f"nfs source {source!r} is not of the form nfs://server[:port]/path")
        try:
            port = parsed.port or DEFAULT_PORT
        except ValueError:
            raise StorageError(f"nfs source {source!r}: the port is not a number") from None
        host = parsed.hostname
        return cls(host, urllib.parse.unquote(parsed.path) or "/", port)

    def url(self) -> str:
        """The libnfs URL: NFSv4 on `port`, no directory cache (other clients write too), no silent reconnects."""
        query = urllib.parse.urlencode({"version": 4, "nfsport": self.port, "dircache": 0, "autoreconnect": 0})
        return f"nfs://{self._host()}{urllib.parse.quote(self.path)}?{query}"

    def source(self) -> str:
        """`nfs://server[:port]/path`, the form parse() reads."""
        port = "" if self.port == DEFAULT_PORT else f":{self.port}"
        return f"nfs://{self._host()}{port}{urllib.parse.quote(self.path)}"

    def child(self, *parts: str) -> NfsTarget:
        """The target with `parts` joined to its path (subPath, provisioned directories); no '..', no absolute part."""
        joined = self.path
        for part in parts:
            if part.startswith("/"):
                raise StorageError(f"nfs sub-path {part!r} must be relative to {self.path}")
            if ".." in part.split("/"):
                raise StorageError(f"nfs sub-path {part!r} must not contain '..'")
            joined = posixpath.join(joined, part)
        return NfsTarget(self.server, joined, self.port)

    def address(self) -> str:
        """`server` or `server:port` (the port only when it is not 2049), for messages."""
        return self._host() if self.port == DEFAULT_PORT else f"{self._host()}:{self.port}"

    def __str__(self) -> str:
        return f"{self.address()}:{self.path}"

    def _host(self) -> str:
        return f"[{self.server}]" if ":" in self.server else self.server
