"""Beat's singleton: only the beat holding a Redis lock sends the maintenance tasks, so two beats
(the old and the new pod of a rollout, a second `make run` on the same Redis) never both run
maintenance. The lock expires BEAT_LOCK_SECONDS after its holder last renewed it: a beat that
died without letting go is replaced that long after, one that stops cleanly lets go at once.

A beat that does not hold the lock waits, trying for it every second, and schedules nothing.
The schedule itself stays Celery's own local file (PersistentScheduler): the lock is all that
is shared."""

from __future__ import annotations

import logging

import redis
from celery.beat import PersistentScheduler
from django.conf import settings
from redis.exceptions import LockError, LockNotOwnedError

from apps.core.redis_client import get_redis

logger = logging.getLogger(__name__)

LOCK_KEY = "beat:maintenance-lock"
STANDBY_POLL_SECONDS = 1.0
_REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class SingletonScheduler(PersistentScheduler):
    def __init__(self, *args, **kwargs) -> None:
        self._lock = get_redis().lock(LOCK_KEY, timeout=settings.BEAT_LOCK_SECONDS, thread_local=False)
        self._holding = False
        self._told_standby = False
        self._closed = False
        super().__init__(*args, **kwargs)

    def _renew_interval(self) -> float:
        # Three renewals per lock lifetime: one slow tick never lets the lock lapse.
        return settings.BEAT_LOCK_SECONDS / 3

    def _hold(self) -> bool:
        """Whether this beat holds the lock now (renewed), taking it when it is free."""
        if self._closed:
            # Celery closes the scheduler from its SIGTERM handler, which may interrupt a tick
            # that then goes on: a closing beat never takes the lock again.
            return False
        try:
            if self._holding:
                self._lock.reacquire()
                return True
            if self._lock.acquire(blocking=False):
                self._holding = True
                self._told_standby = False
                logger.info("beat: took the maintenance lock; this beat schedules maintenance")
                return True
        except LockNotOwnedError:
            self._holding = False
            logger.warning("beat: lost the maintenance lock (it lapsed and another beat took it); "
                           "standing by")
            return False
        except _REDIS_ERRORS as error:
            # Nothing can be sent without Redis anyway; the lock is tried again next tick.
            logger.warning("beat: could not reach Redis for the maintenance lock: %s", error)
            return False
        if not self._told_standby:
            self._told_standby = True
            logger.info("beat: another beat holds the maintenance lock; standing by")
        return False

    def tick(self, *args, **kwargs) -> float:
        if not self._hold():
            return min(STANDBY_POLL_SECONDS, self._renew_interval())
        return min(super().tick(*args, **kwargs), self._renew_interval())

    def close(self) -> None:
        self._closed = True
        super().close()
        if self._holding:
            self._holding = False
            try:
                self._lock.release()
            except (LockError, *_REDIS_ERRORS) as error:
                # It lapses on its own after BEAT_LOCK_SECONDS.
                logger.warning("beat: could not let go of the maintenance lock: %s", error)
