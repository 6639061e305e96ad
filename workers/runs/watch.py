"""One thread per worker process keeps every run it executes alive and told: it beats all their
heartbeats in one Redis pipeline, and reads all their stop signals (cancel flag, owner) in
another, a few times a second. A run waiting on the model then costs no thread and no Redis
round trip of its own for either, so a process carries many runs at once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from apps.runs import events, state
from workers.runs import handback

logger = logging.getLogger(__name__)

# How often stop signals are read: a cancel reaches its run within about this long.
SIGNAL_SECONDS = 0.1
RETRY_SECONDS = 0.25


@dataclass
class Watched:
    run_id: str
    attempt: int
    superseded: bool = False  # another attempt owns the run (a refused beat or the owner key)
    told: bool = False        # the run was cancelled or ended elsewhere
    signals_read: bool = False
    # Wakes the run while it waits on the model, once it has a reason to stop.
    waker: Callable[[], None] | None = None

    def wake_if_stopping(self) -> None:
        waker = self.waker
        if waker is not None and (self.superseded or self.told or handback.hand_back_due()):
            self.waker = None
            waker()


class RunWatch:
    def __init__(self) -> None:
        self._runs: dict[tuple[str, int], Watched] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._next_beat = 0.0
        self._failing_since: float | None = None

    def add(self, run_id: str, attempt: int) -> Watched:
        """Watches the run from now on; its first beat is made here, at once."""
        watched = Watched(run_id, attempt)
        try:
            self._beat([watched])
        except Exception as error:  # noqa: BLE001 (the watch's thread beats again soon)
            logger.warning("heartbeat failed for run %s (attempt %s), retrying: %s",
                           run_id, attempt, error)
        with self._lock:
            self._runs[(run_id, attempt)] = watched
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="run-watch", daemon=True)
                self._thread.start()
        return watched

    def remove(self, watched: Watched) -> None:
        with self._lock:
            self._runs.pop((watched.run_id, watched.attempt), None)

    def count(self) -> int:
        with self._lock:
            return len(self._runs)

    # -- the thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._lock:
                runs = list(self._runs.values())
            now = time.monotonic()
            try:
                if runs and now >= self._next_beat:
                    self._beat(runs)
                    self._next_beat = now + settings.RUN_ORPHAN_AFTER_SECONDS / 4
                if runs:
                    self._read_signals(runs)
                for watched in runs:
                    watched.wake_if_stopping()
                self._restored(runs)
                time.sleep(SIGNAL_SECONDS)
            except Exception as error:  # noqa: BLE001 (Redis trouble is retried, never fatal)
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    logger.warning("run watch: Redis failed for %s runs, retrying: %s", len(runs), error)
                self._next_beat = 0.0  # beat again as soon as Redis answers
                time.sleep(RETRY_SECONDS)

    def _restored(self, runs: list[Watched]) -> None:
        if self._failing_since is not None:
            after = round(time.monotonic() - self._failing_since, 2)
            for watched in runs:
                state.log_recovery(watched.run_id, "heartbeat_restored", watched.attempt,
                                   after_seconds=after)
            self._failing_since = None

    def _beat(self, runs: list[Watched]) -> None:
        """One beat for each run (four per orphan timeout, so one missed beat never looks like
        a dead worker); a beat refused because another attempt owns the run marks it
        superseded, and its worker stops at its next check."""
        owned = events.heartbeat_many([(w.run_id, w.attempt) for w in runs],
                                      ttl=settings.RUN_ORPHAN_AFTER_SECONDS)
        for watched, mine in zip(runs, owned, strict=True):
            if not mine and not watched.superseded:
                watched.superseded = True
                state.log_recovery(watched.run_id, "heartbeat_refused_superseded", watched.attempt)

    def _read_signals(self, runs: list[Watched]) -> None:
        signals = events.stop_signals_many([(w.run_id, w.attempt) for w in runs])
        for watched, (told, superseded) in zip(runs, signals, strict=True):
            watched.told = watched.told or told
            watched.superseded = watched.superseded or superseded
            watched.signals_read = True


_watch = RunWatch()


def watch() -> RunWatch:
    return _watch
