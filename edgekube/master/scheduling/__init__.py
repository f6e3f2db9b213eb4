"""Scheduling, in four parts: `scheduler`, `usage`, `specs` and `placer`.

`scheduler` is pure (filter, score, pick); `usage` keeps what each node has bound and which pods wait; `specs`
caches pod requests by uid; `placer` binds pods in the store (new ones as they are created, pending ones each pass).
"""
