"""Celery signal handlers that need the workers' code. They are connected here, beside the
tasks (workers/tasks.py imports this module), so the Celery app itself imports nothing of the
workers."""

from __future__ import annotations

import threading

from celery.signals import worker_ready


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
