"""A worker creates a run's message and step only while its attempt holds the run, in one
round trip (workers/runs/writer.py `_create_held`): a superseded attempt creates nothing."""

from __future__ import annotations

import pytest

from apps.core.models import Project
from apps.runs import events
from apps.runs.models import Run, RunStep
from apps.threads.models import Message, Thread
from workers.runs.writer import TurnWriter


@pytest.fixture
def run(orm):
    project = Project.objects.create(name="held-rows")
    thread = Thread.objects.create(project=project)
    run = Run.objects.create(project=project, thread=thread, assistant_id="asst_held", model="gpt-4o",
                             status="in_progress", attempts=2, expires_at=None)
    yield run
    project.delete()


def test_the_holding_attempt_creates_its_message_and_step(run):
    message = TurnWriter(run).open_message()
    assert Message.objects.get(pk=message.pk).run_id == run.pk
    step = RunStep.objects.get(run=run)
    assert step.step_details["message_creation"]["message_id"] == message.pk


def test_a_superseded_attempt_creates_nothing(run):
    stale = Run.objects.get(pk=run.pk)
    Run.objects.filter(pk=run.pk).update(attempts=3)  # recovery gave the run to a new attempt
    with pytest.raises(events.Superseded):
        TurnWriter(stale).open_message()
    assert not Message.objects.filter(run_id=run.pk).exists()
    assert not RunStep.objects.filter(run=run).exists()


def test_an_ended_run_gets_no_new_rows(run):
    Run.objects.filter(pk=run.pk).update(status="cancelled")
    with pytest.raises(events.Superseded):
        TurnWriter(Run.objects.get(pk=run.pk)).open_message()
    assert not RunStep.objects.filter(run=run).exists()
