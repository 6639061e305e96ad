"""The only way apps reach Celery: `enqueue(task_name, *ids)` after the current transaction
commits, on the queue this module's table routes the task to. Beat's periodic tasks use the
same table (assistants_project/celery.py installs it as Celery's `task_routes`)."""

from __future__ import annotations

from fnmatch import fnmatchcase

# First match wins; the sweepers must run even when every ingest worker is busy with a slow file.
ROUTES: dict[str, dict[str, str]] = {
    "workers.ingest.tasks.expire_vector_stores": {"queue": "runs"},
    "workers.files.tasks.*": {"queue": "runs"},
    "workers.sandbox.file_tasks.*": {"queue": "sandbox"},
    "workers.runs.tasks.*": {"queue": "runs"},
    "workers.ingest.tasks.*": {"queue": "ingest"},
    "workers.sandbox.tasks.*": {"queue": "sandbox"},
}

RUN_TASK = "workers.runs.tasks.execute_run"
INGEST_TASK = "workers.ingest.tasks.ingest_file"
CLOSE_SANDBOX_TASK = "workers.sandbox.tasks.close_session"
FORGET_SANDBOX_FILE_TASK = "workers.sandbox.file_tasks.forget_file"
EXECUTE_CODE_TASK = "workers.sandbox.tasks.execute_code"


def queue_for(task_name: str) -> str:
    for pattern, route in ROUTES.items():
        if fnmatchcase(task_name, pattern):
            return route["queue"]
    raise LookupError(f"no queue routes the task {task_name!r}")


def enqueue(task_name: str, *ids: object, expires: float | None = None) -> None:
    """Send the task once the caller's transaction commits (at once outside one), so a worker
    never looks for a row that is not there yet. Tasks take IDs and plain values, never rows."""
    from django.db import transaction

    queue = queue_for(task_name)
    transaction.on_commit(lambda: _send(task_name, list(ids), queue, expires))


def _send(task_name: str, args: list, queue: str, expires: float | None) -> None:
    from assistants_project.celery import app

    options = {"expires": expires} if expires is not None else {}
    app.send_task(task_name, args=args, queue=queue, **options)


def served_queues(timeout: float) -> dict[str, list[str]]:
    """Which queues each live worker consumes (readiness asks this)."""
    from assistants_project.celery import app

    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    return {worker: [queue["name"] for queue in queues] for worker, queues in replies.items()}
