"""Cluster state persistence for the master: the StateStore Protocol and its TinyDB implementation."""

from __future__ import annotations

from edgekube.store.journal import JournalStorage
from edgekube.store.protocol import Object, ObjectList, StateStore
from edgekube.store.recovery import Recovery
from edgekube.store.state import TinyStateStore

__all__ = ["JournalStorage", "Object", "ObjectList", "Recovery", "StateStore", "TinyStateStore"]
