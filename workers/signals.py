"""Celery signal handlers that need the workers' code. They are connected here, beside the
tasks (workers/tasks.py imports this module), so the Celery app itself imports nothing of the
workers."""

from __future__ import annotations

import threading

from celery.signals import task_postrun, task_prerun, worker_init, worker_ready, worker_shutting_down

from assistants_project.capacity import pool_name
from workers import time_limits


@worker_ready.connect
def warm_up(sender, **kwargs) -> None:
    """Run and ingest workers load the tokenizer and the model client before the first task
    arrives, so the first run after a (re)start does not pay ~1 s for it."""
    queues = set(sender.app.amqp.queues.consume_from or {})
    if not queues & {"runs", "ingest"}:
        return

    def load() -> None:
        import openai  # noqa: F401

        from workers.tokenization import get_encoding

        get_encoding("o200k_base")

    threading.Thread(target=load, name="warm-up", daemon=True).start()


@worker_shutting_down.connect
def hand_back_runs(**kwargs) -> None:
    """SIGTERM (a rollout, a scale-in): Celery stops taking tasks and this worker's runs are
    handed back to the queue (workers/runs/handback.py). Runs inside the signal handler, so it
    only notes the time; the module is loaded with the tasks, long before."""
    from workers.runs import handback

    handback.begin_drain()


@worker_init.connect
def arm_time_limits(sender, **kwargs) -> None:
    """The thread pool ignores Celery's time limits: a watchdog enforces them there."""
    time_limits.arm(pool_name(sender.pool_cls))


@task_prerun.connect
def watch_time_limits(task=None, **kwargs) -> None:
    time_limits.task_started(task)


@task_postrun.connect
def release_time_limits(task_id=None, **kwargs) -> None:
    time_limits.task_ended(task_id)
