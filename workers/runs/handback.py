"""A runs worker told to shut down (SIGTERM: a rollout, a scale-in) hands its runs back instead
of holding the rollout up or leaving them to the orphan timeout:

- it takes no new run: one delivered now goes straight back to the queue;
- a run in flight goes on, but at its next turn boundary (before it would call the model again)
  it is handed back, so no work is lost;
- RUN_DRAIN_SECONDS after the signal, a run still inside a model call is handed back at its next
  check (a tenth of a second); the turn it was in is discarded and done again by the next
  worker. A hosted tool call under way is not cut short: the run is handed back once it returns.

Handing back is what recovery does to a dead worker's run, done at once by the worker itself
(`requeue`): the attempt is fenced off, the row goes in_progress → queued by a conditional UPDATE
on that attempt, the interrupted turn's half-written step and message go, `thread.run.queued`
is published on the run's stream and the run is enqueued. Another worker claims it as the next
attempt and streams on, so an SSE client's stream goes on with that attempt's events and ends
with `done`."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from apps.runs import events, state
from apps.runs.models import Run, RunStep
from apps.runs.rendering import render_run
from apps.threads.models import Message

_draining_since: float | None = None


def begin_drain() -> None:
    """Called from the worker's SIGTERM handler, so it only notes the time."""
    global _draining_since
    if _draining_since is None:
        _draining_since = time.monotonic()


def draining() -> bool:
    return _draining_since is not None


def hand_back_due() -> bool:
    """The drain time is over: runs still in a model call go back now."""
    return (_draining_since is not None
            and time.monotonic() - _draining_since >= settings.RUN_DRAIN_SECONDS)


def pass_on(run_id: str) -> None:
    """A run delivered to a draining worker goes back to the queue unclaimed."""
    from apps.runs.services import enqueue_run

    state.log_recovery(run_id, "passed_on_while_draining", None)
    enqueue_run(run_id)


def _discard_partial_output(run_id: str) -> None:
    """A requeued run starts its interrupted turn again: what that turn half-wrote goes, so no
    duplicate assistant message appears. The attempt that wrote it is fenced off first, so
    nothing it still writes can appear after this."""
    partial_steps = RunStep.objects.filter(run_id=run_id, status="in_progress")
    message_ids = [
        step.step_details["message_creation"]["message_id"]
        for step in partial_steps if step.type == "message_creation"
    ]
    Message.objects.filter(pk__in=message_ids, status="in_progress").delete()
    partial_steps.delete()


def requeue(run_id: str, attempt: int, *, event: str, resumed: bool) -> Run | None:
    """Take the run from `attempt` and queue it again; None when the run had moved on (it was
    cancelled, ended, or another attempt holds it). `resumed` counts it against MAX_RESUMES:
    recovery's takeover from a dead worker does, a worker's own hand-back does not."""
    from apps.runs.services import enqueue_run

    # The old attempt is told first: from now on its deltas, beats and row writes are refused.
    events.revoke(run_id, attempt)
    counted = {"resumes": F("resumes") + 1} if resumed else {}
    with transaction.atomic():
        requeued = state.transition(run_id, "queued", publish=False, where=Q(attempts=attempt),
                                    **counted)
        if requeued is None:
            return None
        _discard_partial_output(run_id)
    state.log_recovery(run_id, event, attempt, resumes=requeued.resumes)
    events.publish(run_id, "thread.run.queued", render_run(requeued))
    enqueue_run(run_id)
    return requeued
