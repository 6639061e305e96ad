"""Every Celery task's time limits, one pair per kind of work, and their enforcement on the
thread pool.

Each task declares its kind (`@shared_task(..., **limits("runs"))`). The figures come from
the bounds the work already has, so a limit only ever stops work that is stuck:

- `runs`: a run stops itself at its `expires_at` (checked every 0.1 s while streaming, every
  second while it waits on a sandbox), at most RUN_EXPIRY_SECONDS after its task starts; the
  longest stretch without such a check is one upstream call (LLM_TIMEOUT).
- `ingest`: a file is failed by the sweeper INGESTION_DEADLINE_SECONDS after its worker
  started on it; the task gets no longer.
- `sandbox`: a run waits SANDBOX_EXEC_TIMEOUT + 120 s for an execution's reply and then gives
  up (`workers.sandbox.tool`); no one reads a reply after that.
- `sandbox_files` (a session closed, a deleted file's copies removed) and `sweep` (beat's
  periodic tasks, due every MAINTENANCE_INTERVAL_SECONDS): short work, short limits.

Celery enforces `soft_time_limit` and `time_limit` only in its prefork pool; our workers run
`-P threads`, which ignores both (celery/celery#9203). There, `Watchdog` does it: at the soft
limit it raises SoftTimeLimitExceeded in the task's thread, so the task fails its row as for
any error; at the hard limit the task is one no exception reaches (blocked in C), and the
worker process exits, as prefork kills the child: its supervisor starts it again and the
sweepers recover what it held."""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

logger = logging.getLogger(__name__)

# What a task may take after its soft limit to fail its row and clean up.
GRACE_SECONDS = 60.0
# Pools that run tasks in this process's threads and do not enforce Celery's limits.
UNENFORCED_POOLS = ("threads", "solo")
EXIT_CODE = 70  # EX_SOFTWARE


def soft_limit(kind: str) -> float:
    from apps.vector_stores.services import INGESTION_DEADLINE_SECONDS

    return {
        "runs": settings.RUN_EXPIRY_SECONDS + settings.LLM_TIMEOUT + 60.0,
        "ingest": float(INGESTION_DEADLINE_SECONDS),
        "sandbox": settings.SANDBOX_EXEC_TIMEOUT + 120.0,
        "sandbox_files": 60.0,
        "sweep": 120.0,
    }[kind]


def limits(kind: str) -> dict[str, float]:
    """The `shared_task` options of a task of this kind."""
    soft = soft_limit(kind)
    return {"soft_time_limit": soft, "time_limit": soft + GRACE_SECONDS}


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> None:
    """Raise `exception` in another thread at its next bytecode (None withdraws one not yet
    raised). CPython's documented C API; an exception a thread is blocked past waits."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception else None)


def exit_worker(name: str, task_id: str, hard: float) -> None:
    logger.critical("task %s[%s] is still running past its hard time limit of %.0f s; "
                    "the worker exits so it is started again", name, task_id, hard)
    logging.shutdown()
    os._exit(EXIT_CODE)


@dataclass
class _Watched:
    name: str
    thread_id: int
    soft_at: float
    hard_at: float
    hard: float
    soft_fired: bool = False


class Watchdog:
    """Watches the tasks running in this process's threads against their limits."""

    def __init__(self, on_hard: Callable[[str, str, float], None] = exit_worker,
                 interval: float = 0.5) -> None:
        self.on_hard = on_hard
        self.interval = interval
        self._lock = threading.Lock()
        self._watched: dict[str, _Watched] = {}
        self._thread = threading.Thread(target=self._run, name="time-limits", daemon=True)
        self._thread.start()

    def watch(self, task_id: str, name: str, soft: float | None, hard: float | None) -> None:
        """Called from the task's own thread as it starts."""
        if not soft and not hard:
            return
        now = time.monotonic()
        hard_at = now + hard if hard else float("inf")
        soft_at = now + soft if soft else hard_at
        with self._lock:
            self._watched[task_id] = _Watched(name, threading.get_ident(), soft_at, hard_at, hard or 0.0)

    def release(self, task_id: str) -> None:
        """The task ended: an exception fired too late to reach its body is withdrawn, so it
        cannot land in the worker's own code."""
        with self._lock:
            watched = self._watched.pop(task_id, None)
            if watched is not None and watched.soft_fired:
                _raise_in(watched.thread_id, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            now = time.monotonic()
            with self._lock:
                for task_id, watched in list(self._watched.items()):
                    if now >= watched.hard_at:
                        self._watched.pop(task_id)
                        self.on_hard(watched.name, task_id, watched.hard)
                    elif now >= watched.soft_at and not watched.soft_fired:
                        watched.soft_fired = True
                        logger.error("task %s[%s] passed its soft time limit; it is stopped",
                                     watched.name, task_id)
                        _raise_in(watched.thread_id, SoftTimeLimitExceeded)


_watchdog: Watchdog | None = None


def arm(pool: str) -> None:
    """At worker start: pools that ignore Celery's limits get the watchdog."""
    global _watchdog
    if pool in UNENFORCED_POOLS and _watchdog is None:
        _watchdog = Watchdog()
        logger.info("task time limits are enforced in-process (-P %s)", pool)


def task_started(task) -> None:
    if _watchdog is None or task is None or task.request.id is None:
        return
    # A per-call override (apply_async(time_limit=…, soft_time_limit=…)) wins, as in Celery.
    hard, soft = task.request.timelimit or (None, None)
    _watchdog.watch(task.request.id, task.name, soft or task.soft_time_limit, hard or task.time_limit)


def task_ended(task_id: str | None) -> None:
    if _watchdog is not None and task_id is not None:
        _watchdog.release(task_id)
