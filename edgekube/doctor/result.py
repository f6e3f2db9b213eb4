"""The outcome of one doctor check (pass, warn, fail) with its detail and fix; made by the checks, read by report."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def mark(self) -> str:
        return {"pass": "✓", "warn": "!", "fail": "✗"}[self.value]


@dataclass(frozen=True)
class Result:
    """`check` is a stable id for scripts (`cgroup-memory`); `detail` what was found; `fix` what to do, if not pass."""

    check: str
    title: str
    status: Status
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


def passed(check: str, title: str, detail: str) -> Result:
    return Result(check, title, Status.PASS, detail)


def warned(check: str, title: str, detail: str, fix: str) -> Result:
    return Result(check, title, Status.WARN, detail, fix)


def failed(check: str, title: str, detail: str, fix: str) -> Result:
    return Result(check, title, Status.FAIL, detail, fix)
