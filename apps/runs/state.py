"""The run row is the state machine. Every status change goes through `transition`, a
conditional UPDATE that only succeeds from an allowed status, and then publishes the event."""

from __future__ import annotations

from django.db.models import Q

from apps.core.models import unix_now
from apps.runs import events
from apps.runs.models import TERMINAL_STATUSES, Run, RunStep
from apps.runs.serializers import render_run, render_step

ALLOWED_FROM = {
    "queued": ("requires_action", "in_progress"),  # in_progress: an orphan being resumed
    "in_progress": ("queued",),
    "requires_action": ("in_progress",),
    "cancelling": ("queued", "in_progress", "requires_action"),
    "cancelled": ("queued", "in_progress", "requires_action", "cancelling"),
    "completed": ("in_progress", "cancelling"),
    "incomplete": ("in_progress", "cancelling"),
    "failed": ("queued", "in_progress", "requires_action", "cancelling"),
    "expired": ("queued", "in_progress", "requires_action", "cancelling"),
}

_TIMESTAMP_FIELD = {
    "in_progress": "started_at",
    "cancelled": "cancelled_at",
    "failed": "failed_at",
    "completed": "completed_at",
}

_STEP_TIMESTAMP_FIELD = {
    "cancelled": "cancelled_at",
    "failed": "failed_at",
    "completed": "completed_at",
    "expired": "expired_at",
}


def transition(run_id: str, to: str, *, publish: bool = True, where: Q | None = None,
               **fields) -> Run | None:
    """Move the run to `to` if its current status allows it (and `where` holds); None when it
    did not."""
    now = unix_now()
    stamp = _TIMESTAMP_FIELD.get(to)
    if stamp and stamp not in fields:
        fields[stamp] = now
    if to in TERMINAL_STATUSES:
        fields.setdefault("expires_at", None)
        fields.setdefault("required_action", None)
    candidates = Run.objects.filter(pk=run_id, status__in=ALLOWED_FROM[to])
    if where is not None:
        candidates = candidates.filter(where)
    updated = candidates.update(status=to, **fields)
    if not updated:
        return None
    run = Run.objects.get(pk=run_id)
    if publish:
        events.publish(run_id, f"thread.run.{to}", render_run(run))
    return run


def finish_open_steps(run: Run, status: str, last_error: dict | None = None) -> None:
    """When a run ends early its unfinished steps end with it, and say so on the stream."""
    stamp = _STEP_TIMESTAMP_FIELD[status]
    for step in RunStep.objects.filter(run=run, status="in_progress"):
        step.status = status
        setattr(step, stamp, unix_now())
        step.last_error = last_error
        step.save(update_fields=["status", stamp, "last_error"])
        events.publish(run.pk, f"thread.run.step.{status}", render_step(step, run.include))
