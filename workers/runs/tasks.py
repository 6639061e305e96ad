"""Celery tasks for runs: thin — take an id, re-read the row, exit quietly when there is
nothing to do."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.db import transaction
from django.db.models import Q

from apps.runs import events
from apps.runs.models import ACTIVE_STATUSES, Run, RunStep
from apps.runs.serializers import render_run
from apps.threads.models import Message

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 2


@shared_task(name="workers.runs.tasks.execute_run", ignore_result=True)
def execute_run(run_id: str) -> None:
    from workers.runs import hosted  # noqa: F401 (registers hosted tools)
    from workers.runs.executor import execute_run as execute
    from workers.runs.executor import fail

    try:
        execute(run_id)
    except Exception:
        # A bug must not leave the run hanging until orphan recovery: fail it now, then let
        # the error be logged as what it is.
        fail(run_id, "server_error", "The server had an error while processing the run.")
        raise


@shared_task(name="workers.runs.tasks.expire_runs", ignore_result=True)
def expire_runs() -> int:
    from apps.runs.state import expire

    due = list(Run.objects.filter(status__in=ACTIVE_STATUSES, expires_at__lte=int(time.time()))
               .values_list("pk", flat=True))
    for run_id in due:
        expire(run_id)
    return len(due)


def _discard_partial_output(run: Run) -> None:
    """A resumed run starts its interrupted turn again: what that turn half-wrote goes, so no
    duplicate assistant message appears."""
    partial_steps = RunStep.objects.filter(run=run, status="in_progress")
    message_ids = [
        step.step_details["message_creation"]["message_id"]
        for step in partial_steps if step.type == "message_creation"
    ]
    Message.objects.filter(pk__in=message_ids, status="in_progress").delete()
    partial_steps.delete()


@shared_task(name="workers.runs.tasks.recover_orphaned_runs", ignore_result=True)
def recover_orphaned_runs() -> int:
    """Runs whose worker died (no heartbeat) are resumed once, then failed."""
    from apps.runs import state
    from apps.runs.services import enqueue_run
    from workers.runs.executor import fail

    in_progress = list(Run.objects.filter(status="in_progress"))
    living = events.alive([run.pk for run in in_progress])
    recovered = 0
    for run in in_progress:
        if run.pk in living:
            continue
        if run.attempts >= MAX_ATTEMPTS:
            fail(run.pk, "server_error", "The worker running this run stopped unexpectedly.")
            continue
        with transaction.atomic():
            requeued = state.transition(run.pk, "queued", publish=False,
                                        where=Q(attempts=run.attempts))
            if requeued is None:
                continue
            _discard_partial_output(run)
        logger.warning("resuming orphaned run %s (attempt %s)", run.pk, run.attempts + 1)
        events.publish(run.pk, "thread.run.queued", render_run(requeued))
        enqueue_run(run.pk)
        recovered += 1
    return recovered
