"""NFS volumes without a kernel NFS client: an NFSv4 client (libnfs) and the FUSE mount helper built on it.

Parts: `target.py` (NfsTarget: server, port, path), `client.py` (NfsClient: files and directories on an export),
`probe.py` (is an export usable now, time-boxed), `fuse.py` (the FUSE filesystem), `mount.py` (the helper program
edgekube-nfs-mount that Podman's `type=fuse` volumes run), `libnfs.py` (the ctypes binding to libnfs).
"""
