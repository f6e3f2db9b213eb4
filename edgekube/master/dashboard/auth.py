"""Who may use the dashboard: one-time login tokens issued over the API, and the session cookies they become.

`issue` is called by master.requests (verb dashboard, from `ekctl dashboard`): the role is the one the broker's
ACL proved by letting the request through — `admin` when it came on `api/request` (only admins and the master may
write there), `viewer` when it came on the read-only `api/read`. master.dashboard.server calls `redeem` when the
browser opens the login URL and `session` on every later request. Memory only: a master restart logs everyone out.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

Clock = Callable[[], float]
#: A login URL works once, within this many seconds of `ekctl dashboard` printing it.
TOKEN_TTL = 60.0
#: A browser session lasts this long (then `ekctl dashboard` again).
SESSION_TTL = 12 * 3600.0
#: Bounds on what an unauthenticated flood of requests could make the master keep (oldest dropped first).
MAX_TOKENS = 64
MAX_SESSIONS = 256


class Role(StrEnum):
    """What a session may do: viewers watch; admins also act (identify)."""

    VIEWER = "viewer"
    ADMIN = "admin"


@dataclass(frozen=True)
class Grant:
    role: Role
    expires: float


def _digest(secret: str) -> str:
    # Kept hashed: a memory dump or a log line of the tables shows no usable token.
    return hashlib.sha256(secret.encode()).hexdigest()


class Logins:
    """Outstanding login tokens and live sessions; thread-safe (bus thread issues, HTTP threads redeem)."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, Grant] = {}
        self._sessions: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def issue(self, role: Role) -> str:
        """A new one-time login token for `role`, valid TOKEN_TTL seconds."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._prune(self._tokens, MAX_TOKENS - 1)
            self._tokens[_digest(token)] = Grant(role, self._clock() + TOKEN_TTL)
        return token

    def redeem(self, token: str) -> tuple[str, Grant] | None:
        """Spend `token`: a new session id and its grant, or None if it is unknown, used or expired."""
        with self._lock:
            grant = self._tokens.pop(_digest(token), None)
            if grant is None or grant.expires <= self._clock():
                return None
            session = secrets.token_urlsafe(32)
            self._prune(self._sessions, MAX_SESSIONS - 1)
            granted = Grant(grant.role, self._clock() + SESSION_TTL)
            self._sessions[_digest(session)] = granted
            return session, granted

    def session(self, session: str) -> Grant | None:
        """The grant of a session cookie, or None if unknown or expired."""
        with self._lock:
            grant = self._sessions.get(_digest(session))
            if grant is None or grant.expires <= self._clock():
                return None
            return grant

    def end(self, session: str) -> None:
        with self._lock:
            self._sessions.pop(_digest(session), None)

    def _prune(self, table: dict[str, Grant], room: int) -> None:
        now = self._clock()
        for key in [k for k, g in table.items() if g.expires <= now]:
            del table[key]
        while len(table) > room:
            del table[next(iter(table))]  # insertion order: the oldest
