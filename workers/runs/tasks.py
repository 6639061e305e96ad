"""Celery tasks for runs: thin — take an id, re-read the row, exit quietly when there is
nothing to do."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from apps.runs import events
from apps.runs.models import ACTIVE_STATUSES, Run, RunStep
from apps.runs.serializers import render_run
from apps.threads.models import Message
from workers.time_limits import limits

logger = logging.getLogger(__name__)

# A run whose worker died is resumed this often, then failed: a run that keeps killing its
# worker must not take the next one down with it forever.
MAX_RESUMES = 2


@shared_task(name="workers.runs.tasks.execute_run", ignore_result=True, **limits("runs"))
def execute_run(run_id: str) -> None:
    from workers.runs import hosted  # noqa: F401 (registers hosted tools)
    from workers.runs.executor import execute_run as execute

    execute(run_id)


@shared_task(name="workers.runs.tasks.expire_runs", ignore_result=True, **limits("sweep"))
def expire_runs() -> int:
    from apps.runs.state import expire

    due = list(Run.objects.filter(status__in=ACTIVE_STATUSES, expires_at__lte=int(time.time()))
               .values_list("pk", flat=True))
    for run_id in due:
        expire(run_id)
    return len(due)


def _discard_partial_output(run: Run) -> None:
    """A resumed run starts its interrupted turn again: what that turn half-wrote goes, so no
    duplicate assistant message appears. Its worker is fenced off first, so nothing it still
    writes can appear after this."""
    partial_steps = RunStep.objects.filter(run=run, status="in_progress")
    message_ids = [
        step.step_details["message_creation"]["message_id"]
        for step in partial_steps if step.type == "message_creation"
    ]
    Message.objects.filter(pk__in=message_ids, status="in_progress").delete()
    partial_steps.delete()


def _resume(run: Run) -> bool:
    """Take the run from its dead (or unreachable) worker and queue it again."""
    from apps.runs import state
    from apps.runs.services import enqueue_run

    # The old executor is told first: from now on its deltas, beats and row writes are refused.
    events.revoke(run.pk, run.attempts)
    with transaction.atomic():
        requeued = state.transition(run.pk, "queued", publish=False, where=Q(attempts=run.attempts),
                                    resumes=F("resumes") + 1)
        if requeued is None:
            return False
        _discard_partial_output(run)
    state.log_recovery(run.pk, "orphan_requeued", run.attempts, resumes=requeued.resumes)
    events.publish(run.pk, "thread.run.queued", render_run(requeued))
    enqueue_run(run.pk)
    return True


def _tag(run: Run) -> str:
    # A sighting counts for one status of one attempt: a run that moved on starts afresh.
    return f"{run.status}:{run.attempts}"


@shared_task(name="workers.runs.tasks.recover_orphaned_runs", ignore_result=True, **limits("sweep"))
def recover_orphaned_runs() -> int:
    """The sweeper for work a lost process or message left behind, each case acted on only
    after a full RUN_ORPHAN_AFTER_SECONDS without a sign of life (one missed beat or a Redis
    blip is not a death):
    - `in_progress` runs without a heartbeat are resumed (at most MAX_RESUMES times), then failed;
    - `cancelling` runs without a heartbeat are finished as `cancelled`;
    - `queued` runs nobody claimed are enqueued again (the claim is idempotent)."""
    from apps.runs import state
    from apps.runs.services import enqueue_run
    from workers.runs.executor import fail, finish_cancelled

    runs = list(Run.objects.filter(status__in=("in_progress", "cancelling", "queued"))
                .only("pk", "status", "attempts", "resumes"))
    held = [run for run in runs if run.status != "queued"]
    living = events.alive([run.pk for run in held])
    events.clear_suspicion([(run.pk, _tag(run)) for run in held if run.pk in living])
    unseen = [run for run in runs if run.pk not in living]
    waited = events.unseen_for([(run.pk, _tag(run)) for run in unseen], time.time())
    for run in held:
        # Re-asserted on every pass: a cancel whose flag Redis lost still reaches the worker.
        if run.status == "cancelling":
            events.request_cancel(run.pk)
    # A queued run may just wait its turn behind a long queue: each time it is enqueued again
    # the next time waits twice as long, so a backlog is never flooded with duplicates.
    requeued = events.reenqueues([(run.pk, _tag(run)) for run in unseen if run.status == "queued"])
    timeout = settings.RUN_ORPHAN_AFTER_SECONDS
    acted = 0
    for run in unseen:
        if run.status == "queued":
            if waited[run.pk] < timeout * (2 ** (requeued[run.pk] + 1) - 1):
                continue
            acted += 1
            count = events.count_reenqueue(run.pk, _tag(run)) + 1
            state.log_recovery(run.pk, "queued_reenqueued", run.attempts,
                               waited_seconds=round(waited[run.pk], 1), times=count)
            enqueue_run(run.pk)
            continue
        if waited[run.pk] < timeout:
            continue
        acted += 1
        events.clear_suspicion([(run.pk, _tag(run))])
        if run.status == "cancelling":
            events.revoke(run.pk, run.attempts)
            state.log_recovery(run.pk, "dead_cancelling_cancelled", run.attempts)
            finish_cancelled(run.pk)
        elif run.resumes >= MAX_RESUMES:
            events.revoke(run.pk, run.attempts)
            if fail(run.pk, "server_error", "The worker running this run stopped unexpectedly.",
                    where=Q(attempts=run.attempts)) is not None:
                state.log_recovery(run.pk, "orphan_failed", run.attempts, resumes=run.resumes)
        else:
            _resume(run)
    return acted
