"""Runs: create (with the thread lock), read, modify, cancel, submit tool outputs."""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.db import IntegrityError, transaction

from apps.assistants.models import Assistant
from apps.assistants.services import get_assistant
from apps.core.errors import InvalidRequestError, not_found
from apps.core.fields import UNSET
from apps.core.models import Project, unix_now
from apps.core.queue import RUN_TASK, enqueue
from apps.runs import events, state
from apps.runs.models import Run, RunStep, active_run_id
from apps.runs.rendering import FILE_SEARCH_CONTENT, render_run, render_step
from apps.threads.models import Thread
from apps.threads.rendering import render_thread
from apps.threads.services import add_run_messages, create_thread, get_thread
from apps.vector_stores.tool_resources import merged_resources, normalize_tool_resources

_OVERRIDABLE = ("model", "tools", "temperature", "top_p", "response_format", "reasoning_effort")
# The run options a create request may give (besides assistant_id, additional_messages, and
# for create-thread-and-run its thread and tool_resources).
RUN_FIELDS = (*_OVERRIDABLE, "instructions", "additional_instructions", "metadata",
              "max_prompt_tokens", "max_completion_tokens", "truncation_strategy", "tool_choice",
              "parallel_tool_calls")


def enqueue_run(run_id: str) -> None:
    enqueue(RUN_TASK, run_id)


def _validate_include(include: list[str]) -> list[str]:
    for value in include:
        if value != FILE_SEARCH_CONTENT:
            raise InvalidRequestError(
                f"Invalid value: '{value}'. Supported values are: '{FILE_SEARCH_CONTENT}'.",
                param="include", code="invalid_value",
            )
    return list(include)


def _build_run(project: Project, thread: Thread, assistant: Assistant, body: dict,
               include: list[str], run_resources: dict | None = None) -> Run:
    instructions = body["instructions"] if body.get("instructions") is not None else (
        assistant.instructions or "")
    if body.get("additional_instructions"):
        instructions = (instructions + "\n\n" if instructions else "") + body["additional_instructions"]
    run = Run(
        project=project,
        thread=thread,
        assistant_id=assistant.pk,
        instructions=instructions,
        metadata=body.get("metadata") or {},
        max_prompt_tokens=body.get("max_prompt_tokens"),
        max_completion_tokens=body.get("max_completion_tokens"),
        truncation_strategy={"type": "auto", "last_messages": None,
                             **(body.get("truncation_strategy") or {})},
        tool_choice=body.get("tool_choice") or "auto",
        parallel_tool_calls=body.get("parallel_tool_calls", True) is not False,
        include=include,
        tool_resources=merged_resources(assistant.tool_resources, thread.tool_resources,
                                         run_resources),
        expires_at=unix_now() + settings.RUN_EXPIRY_SECONDS,
    )
    for field in _OVERRIDABLE:
        value = body.get(field)
        setattr(run, field, value if value is not None else getattr(assistant, field))
    run.tools = run.tools or []
    return run


def _check_named_tool(run: Run) -> None:
    choice = run.tool_choice
    if not isinstance(choice, dict):
        return
    wanted = choice.get("type")
    if wanted == "function":
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise InvalidRequestError("Missing required parameter: 'tool_choice.function.name'.",
                                      param="tool_choice.function.name",
                                      code="missing_required_parameter")
        if not any(t.get("type") == "function" and t["function"]["name"] == name for t in run.tools):
            raise InvalidRequestError(
                f"Invalid 'tool_choice': the function '{name}' is not one of the run's tools.",
                param="tool_choice",
            )
    elif not any(t.get("type") == wanted for t in run.tools):
        raise InvalidRequestError(
            f"Invalid 'tool_choice': the tool '{wanted}' is not one of the run's tools.",
            param="tool_choice",
        )


def _already_active(thread_id: str, run_id: str | None) -> InvalidRequestError:
    return InvalidRequestError(f"Thread {thread_id} already has an active run {run_id}.")


def _insert_and_enqueue(run: Run, opening_events: list[tuple[str, dict]]) -> Run:
    """In the caller's transaction, without a savepoint of its own (two round trips on the way
    to the first token): the thread's lock, or its being new, leaves the one-active-run
    constraint nothing to catch but a race the caller answers after rolling back."""
    _check_named_tool(run)
    run.save()
    snapshot = render_run(run)
    opening = [*opening_events, ("thread.run.created", snapshot), ("thread.run.queued", snapshot)]

    def after_commit() -> None:
        events.publish_many(run.pk, opening)
        enqueue_run(run.pk)

    transaction.on_commit(after_commit)
    return run


def create_run(project: Project, thread_id: str, *, assistant_id: str, include: list[str],
               additional_messages: list[dict] | None = None, **options) -> Run:
    """`options`: any of RUN_FIELDS; what is not given comes from the assistant."""
    include = _validate_include(include)
    try:
        with transaction.atomic():
            thread = get_thread(project, thread_id, for_update=True)
            assistant = get_assistant(project, assistant_id, param="assistant_id")
            running = active_run_id(thread.pk)
            if running:
                raise _already_active(thread.pk, running)
            if additional_messages:
                add_run_messages(project, thread, additional_messages)
            run = _build_run(project, thread, assistant, options, include)
            return _insert_and_enqueue(run, [])
    except IntegrityError as error:
        if "one_active_run_per_thread" not in str(error):
            raise
        raise _already_active(thread_id, active_run_id(thread_id)) from None


def create_thread_and_run(project: Project, *, assistant_id: str, thread: dict | None = None,
                          tool_resources: dict | None = None, **options) -> Run:
    """`thread`: a CreateThreadRequest's fields; `options` as for create_run."""
    thread_fields = thread or {}
    with transaction.atomic():
        assistant = get_assistant(project, assistant_id, param="assistant_id")
        run_resources = normalize_tool_resources(project, tool_resources, owner_kind="thread")
        created = create_thread(project, messages=thread_fields.get("messages"),
                                metadata=thread_fields.get("metadata"),
                                tool_resources=thread_fields.get("tool_resources"))
        run = _build_run(project, created, assistant, options, [], run_resources)
        return _insert_and_enqueue(run, [("thread.created", render_thread(created))])


def get_run(project: Project, thread_id: str, run_id: str) -> Run:
    """The run as it stands, expired first if it sat queued or waiting past expires_at."""
    run = Run.objects.restrict(project).filter(thread_id=thread_id, pk=run_id).first()
    if run is None:
        get_thread(project, thread_id)
        raise not_found("run", run_id)
    return state.expire_if_overdue(run)


def list_runs(project: Project, thread_id: str):
    thread = get_thread(project, thread_id)
    for run in Run.objects.filter(thread=thread, status__in=("queued", "requires_action"),
                                  expires_at__lte=int(time.time())):
        state.expire_if_overdue(run)
    return Run.objects.filter(thread=thread)


def modify_run(project: Project, thread_id: str, run_id: str, *,
               metadata: dict | None = UNSET) -> Run:
    run = get_run(project, thread_id, run_id)
    if metadata is not UNSET:
        run.metadata = metadata or {}
        run.save(update_fields=["metadata"])
    return run


def cancel_run(project: Project, thread_id: str, run_id: str) -> Run:
    run = get_run(project, thread_id, run_id)
    cancelling = state.transition(run.pk, "cancelling")
    if cancelling is None:
        raise InvalidRequestError(f"Cannot cancel run with status '{run.status}'.", param=None)
    events.request_cancel(run.pk)
    if run.status != "in_progress":
        # No worker holds a queued or waiting run; one is sent to finish the cancellation.
        enqueue_run(run.pk)
    return cancelling


def expire_run(project: Project, thread_id: str, run_id: str) -> Run:
    """An operator ends an active run now, as if its expires_at had passed (the admin's action);
    a worker holding it stops at its next check."""
    run = get_run(project, thread_id, run_id)
    expired = state.expire(run.pk)
    if expired is None:
        raise InvalidRequestError(f"Cannot expire run with status '{run.status}'.", param=None)
    return expired


class _Overdue(Exception):
    """The run waits for outputs no more: its expires_at has passed."""


def _not_accepting(run: Run) -> InvalidRequestError:
    return InvalidRequestError(f"Runs in status \"{run.status}\" do not accept tool outputs.",
                               param=None)


def submit_tool_outputs(project: Project, thread_id: str, run_id: str,
                        tool_outputs: list[dict]) -> tuple[Run, str]:
    """Record the outputs ({tool_call_id, output} items), complete the tool-call step and
    requeue. Returns the run and the Redis stream position from which this submission's events
    start."""
    run = get_run(project, thread_id, run_id)
    try:
        with transaction.atomic():
            return _accept_tool_outputs(run.pk, tool_outputs)
    except _Overdue:
        # Outputs after expires_at are refused even before the sweeper comes by: the run
        # expires now (outside the refused transaction, so it sticks) and answers as expired.
        run = state.expire_if_overdue(Run.objects.get(pk=run.pk))
        raise _not_accepting(run) from None


def _accept_tool_outputs(run_id: str, tool_outputs: list[dict]) -> tuple[Run, str]:
    """Inside the caller's transaction, with the run row locked."""
    run = Run.objects.select_for_update().get(pk=run_id)
    if run.status != "requires_action":
        raise _not_accepting(run)
    if state.is_overdue(run):
        raise _Overdue()
    expected = [call["id"] for call in run.required_action["submit_tool_outputs"]["tool_calls"]]
    outputs = _match_outputs(expected, tool_outputs)
    step = RunStep.objects.select_for_update().get(
        run=run, type="tool_calls", status="in_progress")
    details = step.step_details
    for call in details["tool_calls"]:
        if call["id"] in outputs:
            call["function"]["output"] = outputs[call["id"]]
    step.step_details = details
    step.status = "completed"
    step.completed_at = unix_now()
    step.save(update_fields=["step_details", "status", "completed_at"])
    start_id = events.last_event_id(run.pk)
    queued = state.transition(run.pk, "queued", publish=False, required_action=None)
    step_event = ("thread.run.step.completed", render_step(step, run.include))
    queued_event = ("thread.run.queued", render_run(queued))

    def after_commit() -> None:
        events.publish_many(run.pk, [step_event, queued_event])
        enqueue_run(run.pk)

    transaction.on_commit(after_commit)
    return queued, start_id


def _match_outputs(expected: list[str], submitted: list[dict]) -> dict[str, str]:
    outputs: dict[str, str] = {}
    for index, item in enumerate(submitted):
        call_id = item.get("tool_call_id")
        if not call_id:
            raise InvalidRequestError(
                f"Missing required parameter: 'tool_outputs[{index}].tool_call_id'.",
                param=f"tool_outputs[{index}].tool_call_id", code="missing_required_parameter")
        if call_id not in expected:
            raise InvalidRequestError(
                f"Invalid 'tool_outputs[{index}].tool_call_id': no tool call '{call_id}' is "
                f"awaiting output. Expected one of: {', '.join(expected)}.",
                param=f"tool_outputs[{index}].tool_call_id", code="invalid_value")
        if call_id in outputs:
            raise InvalidRequestError(
                f"Invalid 'tool_outputs[{index}].tool_call_id': duplicate output for '{call_id}'.",
                param=f"tool_outputs[{index}].tool_call_id", code="invalid_value")
        outputs[call_id] = item.get("output") or ""
    missing = [call_id for call_id in expected if call_id not in outputs]
    if missing:
        raise InvalidRequestError(
            f"Expected tool outputs for call_ids {json.dumps(expected)}, got "
            f"{json.dumps(list(outputs))}. "
            f"Missing outputs for: {', '.join(missing)}. All outputs must be submitted in a "
            "single request.",
            param="tool_outputs")
    return outputs


def get_step(project: Project, thread_id: str, run_id: str, step_id: str) -> RunStep:
    run = get_run(project, thread_id, run_id)
    step = RunStep.objects.filter(run=run, pk=step_id).first()
    if step is None:
        raise not_found("run step", step_id)
    return step


def list_steps(project: Project, thread_id: str, run_id: str):
    return RunStep.objects.filter(run=get_run(project, thread_id, run_id))


def step_include(include: list[str]) -> list[str]:
    return _validate_include(include)
