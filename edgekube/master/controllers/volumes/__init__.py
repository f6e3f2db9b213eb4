"""Persistent volumes: `binder` (claims ↔ volumes, phases, reclaim), `provisioner` (NFS sub-directories), `protection`.

`facts` reads stored claims, volumes and classes; `users` indexes pods by the claims they use; `nfsio` is the
NFS share protocol (real one built by master.wiring) and `worker` runs its slow I/O off the master's loop.
"""
