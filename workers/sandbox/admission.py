"""How many sandbox sessions may live at once, in all and per project, kept in Redis so every
worker sees the same counts. Past a cap, the least recently used session that is not running
anything is evicted; when every one is busy, the new session is refused."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class SandboxBusy(Exception):
    """Every session that could make room is running code right now."""


class Admission:
    def __init__(self, redis, namespace: str) -> None:
        self.redis = redis
        self.live_key = f"sandbox:live:{namespace}"
        self.prefix = f"sandbox:live:{namespace}"

    def _project_key(self, project: str) -> str:
        return f"{self.prefix}:project:{project}"

    def _owner_key(self, session: str) -> str:
        return f"{self.prefix}:owner:{session}"

    @staticmethod
    def _busy_key(session: str) -> str:
        return f"sandbox:busy:{session}"

    def lock(self):
        return self.redis.lock(f"{self.prefix}:admission", timeout=60, blocking_timeout=60)

    @contextlib.contextmanager
    def busy(self, session: str, seconds: float) -> Iterator[None]:
        """While code runs or files move, the session is not evicted."""
        key = self._busy_key(session)
        self.redis.incr(key)
        self.redis.expire(key, int(seconds))
        try:
            yield
        finally:
            if self.redis.decr(key) <= 0:
                self.redis.delete(key)

    def _oldest_idle(self, key: str, exclude: str) -> str | None:
        for member in self.redis.zrange(key, 0, -1):
            session = member.decode()
            if session != exclude and not self.redis.exists(self._busy_key(session)):
                return session
        return None

    def make_room(self, session: str, project: str | None, max_total: int,
                  max_per_project: int) -> list[str]:
        """The sessions to evict so that `session` fits (the caller closes them)."""
        evict: list[str] = []
        checks = [(self.live_key, max_total, "sandbox sessions in all")]
        if project:
            checks.insert(0, (self._project_key(project), max_per_project, "sandbox sessions per project"))
        for key, cap, what in checks:
            while self.redis.zcard(key) >= cap:
                candidate = self._oldest_idle(key, session)
                if candidate is None:
                    raise SandboxBusy(f"All {cap} {what} are running code; try again shortly.")
                self.release(candidate)  # counted out now; its container is closed by the caller
                evict.append(candidate)
        return evict

    def admit(self, session: str, project: str | None) -> None:
        now = time.time()
        self.redis.zadd(self.live_key, {session: now})
        if project:
            self.redis.zadd(self._project_key(project), {session: now})
            self.redis.set(self._owner_key(session), project)

    def touch(self, session: str) -> None:
        now = time.time()
        self.redis.zadd(self.live_key, {session: now}, xx=True)
        owner = self.redis.get(self._owner_key(session))
        if owner:
            self.redis.zadd(self._project_key(owner.decode()), {session: now}, xx=True)

    def release(self, session: str) -> None:
        self.redis.zrem(self.live_key, session)
        owner = self.redis.get(self._owner_key(session))
        if owner:
            self.redis.zrem(self._project_key(owner.decode()), session)
            self.redis.delete(self._owner_key(session))
