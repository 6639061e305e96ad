"""The run row is the state machine. Every status change goes through `transition`, a
conditional UPDATE that only succeeds from an allowed status, and then publishes the event.
`end_run` ends a run early and closes what it left open, publishing in OpenAI's order.

A worker's changes are fenced by its attempt (the row's `attempts` when it claimed the run):
once recovery handed the run to another attempt, the old worker's changes match no row."""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext

from django.db import transaction
from django.db.models import Q, QuerySet

from apps.core import metrics
from apps.core.models import unix_now
from apps.runs import events
from apps.runs.models import TERMINAL_STATUSES, Run, RunStep
from apps.runs.rendering import render_run, render_step
from apps.runs.sql import Batch, update_returning

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

recovery_logger = logging.getLogger("runs.recovery")


def log_recovery(run_id: str, what: str, attempt: int | None, **details) -> None:
    """One line per recovery action, in one shape, so an operator can follow a run through a
    fault: `recovery run=… event=… attempt=… key=value…`."""
    extra = "".join(f" {name}={value}" for name, value in details.items())
    recovery_logger.warning("recovery run=%s event=%s attempt=%s%s", run_id, what, attempt, extra)


# Only the worker executing the run ends it this way, so only its current attempt may.
WORKER_STATUSES = ("completed", "incomplete", "requires_action")

_TIMESTAMP_FIELD = {
    "in_progress": "started_at",
    "cancelled": "cancelled_at",
    "failed": "failed_at",
    "completed": "completed_at",
}

STEP_TIMESTAMP_FIELD = {
    "cancelled": "cancelled_at",
    "failed": "failed_at",
    "completed": "completed_at",
    "expired": "expired_at",
}


def transition_update(run_id: str, to: str, *, where: Q | None = None,
                      attempt: int | None = None, **fields) -> tuple[QuerySet, dict]:
    """The conditional UPDATE of a transition, as (rows it may change, values it sets)."""
    if to in WORKER_STATUSES and attempt is None:
        raise ValueError(f"only the worker holding a run moves it to {to}: pass its attempt")
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
    if attempt is not None:
        candidates = candidates.filter(attempts=attempt)
    return candidates, {"status": to, **fields}


def transitioned(run: Run, *, publish: bool = True) -> Run:
    """What follows a transition that changed the row."""
    metrics.run_transitioned(run)
    if publish:
        events.publish(run.pk, f"thread.run.{run.status}", render_run(run))
    return run


def transition(run_id: str, to: str, *, publish: bool = True, where: Q | None = None,
               attempt: int | None = None, **fields) -> Run | None:
    """Move the run to `to` if its current status allows it (and `where` holds, and the run is
    still held by `attempt` when given); None when it did not. One round trip: the UPDATE
    hands back the row it wrote."""
    candidates, values = transition_update(run_id, to, where=where, attempt=attempt, **fields)
    changed = update_returning(candidates, **values)
    if not changed:
        return None
    return transitioned(changed[0], publish=publish)


def claim(run_id: str) -> Run | None:
    """A worker takes a queued run that is not overdue: one UPDATE … RETURNING, which also
    hands back the project's token quota (`token_limit`, 0 for none), so the run's model calls
    need no further read for it; the claiming attempt then owns the run in Redis. None when the
    run is not claimable (ended, taken, cancelling, overdue); the caller reads it then to find
    out why."""
    from django.conf import settings
    from django.db.models import F

    candidates, values = transition_update(
        run_id, "in_progress", where=Q(expires_at__isnull=True) | Q(expires_at__gt=time.time()),
        attempts=F("attempts") + 1)
    quota = (f"SELECT COALESCE(p.tokens_per_minute, {int(settings.TOKEN_QUOTA_TPM)}) "
             "FROM core_project p WHERE p.id = runs_run.project_id")
    changed = update_returning(candidates, extra={"token_limit": quota}, **values)
    if not changed:
        return None
    run = transitioned(changed[0], publish=False)
    # Ownership and `thread.run.in_progress` in one round trip: it lies on the path to the
    # first token.
    events.claim(run.pk, run.attempts, announce=(f"thread.run.{run.status}", render_run(run)))
    return run


# RunStepObject.last_error.code allows only these; a run's other codes (invalid_prompt) are
# server_error on its steps.
_STEP_ERROR_CODES = ("server_error", "rate_limit_exceeded")

# A run waiting on no worker: nothing but a request or the sweeper moves it past expires_at.
_IDLE_STATUSES = ("queued", "requires_action")


def step_error(last_error: dict | None) -> dict | None:
    if last_error is None or last_error.get("code") in _STEP_ERROR_CODES:
        return last_error
    return {**last_error, "code": "server_error"}


def finish_open_steps(run: Run, status: str, last_error: dict | None = None, *,
                      publish: bool = True) -> list[RunStep]:
    """When a run ends early its unfinished steps end with it, and say so on the stream. Each
    step changes only while still in progress, so a step someone else closed is left alone."""
    stamp = STEP_TIMESTAMP_FIELD[status]
    error = step_error(last_error)
    finished = []
    for step in RunStep.objects.filter(run=run, status="in_progress"):
        now = unix_now()
        changed = RunStep.objects.filter(pk=step.pk, status="in_progress").update(
            status=status, last_error=error, **{stamp: now})
        if not changed:
            continue
        step.status, step.last_error = status, error
        setattr(step, stamp, now)
        finished.append(step)
        if publish:
            events.publish(run.pk, f"thread.run.step.{status}", render_step(step, run.include))
    return finished


def close_open_messages(run: Run, reason: str, *, publish: bool = True) -> list:
    from apps.threads.models import Message
    from apps.threads.rendering import render_message

    closed = []
    for message in Message.objects.filter(run_id=run.pk, status="in_progress"):
        now = unix_now()
        details = {"reason": reason}
        changed = Message.objects.filter(pk=message.pk, status="in_progress").update(
            status="incomplete", incomplete_at=now, incomplete_details=details)
        if not changed:
            continue
        message.status, message.incomplete_at, message.incomplete_details = "incomplete", now, details
        closed.append(message)
        if publish:
            events.publish(run.pk, "thread.message.incomplete", render_message(message))
    return closed


def end_run(run_id: str, status: str, *, step_status: str | None = None,
            message_reason: str | None = None, where: Q | None = None,
            attempt: int | None = None, batch: Batch | None = None, **fields) -> Run | None:
    """Move the run to a terminal `status` and close what it left open, publishing as a normal
    completion does: message events, then step events, then the run event, then `done`.
    None (and nothing published) when the run could not move, e.g. it had already ended.
    With `batch`, the run's UPDATE goes last in it, and the batch is sent: one round trip for a
    turn's closing writes. The run's end and what it closes commit together, so no reader sees
    an ended run with a message still in progress."""
    from apps.threads.rendering import render_message

    # A turn's batch already holds its closing writes in one statement list (one implicit
    # transaction); an early end closes leftovers, so it takes a transaction of its own.
    together = transaction.atomic() if (message_reason or step_status) else nullcontext()
    with together:
        if batch is None:
            run = transition(run_id, status, publish=False, where=where, attempt=attempt, **fields)
        else:
            candidates, values = transition_update(run_id, status, where=where, attempt=attempt,
                                                   **fields)
            changed: list[Run] = []
            batch.update_returning(candidates, then=lambda _count, rows: changed.extend(rows),
                                   **values)
            batch.send()
            run = transitioned(changed[0], publish=False) if changed else None
        if run is None:
            return None
        closed = close_open_messages(run, message_reason, publish=False) if message_reason else []
        finished = (finish_open_steps(run, step_status, fields.get("last_error"), publish=False)
                    if step_status else [])
    events.request_stop(run_id)
    for message in closed:
        events.publish(run_id, "thread.message.incomplete", render_message(message))
    for step in finished:
        events.publish(run_id, f"thread.run.step.{step_status}", render_step(step, run.include))
    events.publish(run_id, f"thread.run.{status}", render_run(run))
    events.publish_done(run_id)
    return run


def expire(run_id: str, where: Q | None = None, attempt: int | None = None) -> Run | None:
    return end_run(run_id, "expired", step_status="expired", message_reason="run_expired",
                   where=where, attempt=attempt)


def is_overdue(run: Run) -> bool:
    return run.expires_at is not None and run.expires_at <= time.time()


def must_stop(run: Run) -> bool:
    """Whoever works on the run stops: it was cancelled or ended elsewhere, ran out of time, or
    (`run` being the worker's claimed row, whose `attempts` is its own) another attempt owns it."""
    told, superseded = events.stop_signals(run.pk, run.attempts)
    return told or superseded or is_overdue(run)


def superseded(run: Run) -> bool:
    return events.stop_signals(run.pk, run.attempts)[1]


# A run in these is held by the attempt that claimed it (cancelling: its worker ends it).
HOLDING_STATUSES = ("in_progress", "cancelling")


def holds(attempt: int) -> Q:
    """Rows of a run still held by `attempt`."""
    return Q(attempts=attempt, status__in=HOLDING_STATUSES)


def expire_if_overdue(run: Run) -> Run:
    """A queued or waiting run past expires_at is expired on sight rather than when the sweeper
    next passes, so no client ever sees it overdue. A run a worker holds is the worker's to end."""
    if run.status not in _IDLE_STATUSES or not is_overdue(run):
        return run
    expire(run.pk, where=Q(status__in=_IDLE_STATUSES, expires_at__lte=int(time.time())))
    run.refresh_from_db()
    return run


_LEFTOVER_STEP_STATUS = {"cancelled": "cancelled", "expired": "expired", "failed": "failed"}


def close_leftovers(run_id: str) -> None:
    """Rows a worker created after someone else ended its run (it was mid-answer when the
    sweeper or recovery closed the run) are closed too: quietly, as that run's stream has
    already said `done`."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.status not in TERMINAL_STATUSES:
        return
    step_status = _LEFTOVER_STEP_STATUS.get(run.status, "cancelled")
    finish_open_steps(run, step_status, publish=False)
    close_open_messages(run, f"run_{step_status}", publish=False)
