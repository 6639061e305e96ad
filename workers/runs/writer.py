"""Writes what one model call produces (message, run steps) to the database and publishes the
matching stream events, in OpenAI's order. Rows are written before the next external call.

Every write is fenced by the worker's attempt (`run.attempts` of the claimed row): rows are
created under the run's row lock only while the attempt holds the run, updates match only
while it does, and deltas go through the Redis owner check. A worker recovery replaced gets
`Superseded` and stops."""

from __future__ import annotations

from django.db import DataError, connection
from django.db.models import Exists, QuerySet

from apps.core.ids import new_id
from apps.core.models import unix_now
from apps.runs import events, state
from apps.runs.models import Run, RunStep
from apps.runs.rendering import render_step
from apps.runs.sql import Batch, Then
from apps.threads.models import Message
from apps.threads.rendering import render_message
from workers.runs.hosted import CallStream, tool_for_call, tool_of_kind
from workers.runs.model_calls import ToolCallOut
from workers.runs.stream_annotations import StreamAnnotations
from workers.runs.text_flush import flusher

_DIVISION_BY_ZERO = "22012"


def held_by(run: Run) -> Exists:
    """The run row still held by the attempt that claimed `run`."""
    return Exists(Run.objects.filter(pk=run.pk).filter(state.holds(run.attempts)))


def fenced(queryset: QuerySet, run: Run) -> QuerySet:
    return queryset.filter(held_by(run))


def check_fence(run: Run) -> None:
    """After a fenced write matched nothing: Superseded when another attempt owns the run (a
    row someone else closed, or a run ended elsewhere, is the quiet case)."""
    current = Run.objects.filter(pk=run.pk).values_list("attempts", flat=True).first()
    if current != run.attempts:
        raise events.Superseded(f"{run.pk}: attempt {run.attempts} replaced by {current}")


def _update(queryset: QuerySet, fields: dict, then: Then, batch: Batch | None) -> None:
    if batch is None:
        then(queryset.update(**fields), [])
    else:
        batch.update(queryset, then=then, **fields)


def release_connection() -> None:
    """The thread's database connection back to the pool, between the writes of a run that
    waits on the model: a worker carries far more runs than the pool has connections."""
    if not connection.in_atomic_block:
        connection.close()


class TurnWriter:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.attempt = run.attempts
        self.message: Message | None = None
        self.message_step: RunStep | None = None
        self.message_closed = False
        self.tool_step: RunStep | None = None
        self.text = ""
        self._call_ids: dict[int, str] = {}
        self._calls: dict[int, ToolCallOut] = {}
        self._streams: dict[int, CallStream] = {}  # hosted calls' arguments as they arrive
        self._handed_over: set[int] = set()
        self._sent = 0  # how much of the text went out in deltas
        self.annotations: list[dict] = []  # those that went out, in text order
        self._annotations = StreamAnnotations()
        self._held_events: list[tuple[str, dict]] | None = None  # see on_text

    # -- helpers ------------------------------------------------------------------------
    def _publish(self, batch: list[tuple[str, dict]]) -> None:
        if self._held_events is not None:
            self._held_events += batch
            return
        events.publish_unless_stopped(self.run.pk, batch, self.attempt)

    def _create_held(self, *rows) -> None:
        """Inserts `rows` in one round trip, only while this attempt holds the run. The batch's
        first statement locks the run's row (as recovery's requeue locks it) and divides by the
        number of rows held: when the attempt no longer holds the run that fails, and Postgres,
        which runs a batch sent outside a transaction as one, inserts none of them. (A
        transaction of its own cost two more round trips on the way to the first token.)"""
        # Spelled out: Django refuses select_for_update() outside a transaction.
        held, params = (Run.objects.filter(pk=self.run.pk).filter(state.holds(self.attempt))
                        .values_list("pk", flat=True).query.sql_with_params())
        batch = Batch()
        batch.add((f"SELECT 1 / COUNT(*) FROM ({held} FOR NO KEY UPDATE) AS held", tuple(params)))
        for row in rows:
            batch.insert(row)
        if connection.in_atomic_block:
            raise RuntimeError("held rows are created outside any transaction")
        try:
            batch.send()
        except DataError as error:
            if getattr(error.__cause__, "sqlstate", None) != _DIVISION_BY_ZERO:
                raise
            raise events.Superseded(f"{self.run.pk}: attempt {self.attempt} no longer holds the run") from None
        for row in rows:
            row._state.adding, row._state.db = False, "default"

    def _step(self, kind: str, details: dict) -> RunStep:
        return RunStep(project_id=self.run.project_id, run=self.run, thread_id=self.run.thread_id,
                       assistant_id=self.run.assistant_id, type=kind, step_details=details)

    def _publish_step(self, step: RunStep) -> None:
        rendered = render_step(step, self.run.include)
        self._publish([("thread.run.step.created", rendered), ("thread.run.step.in_progress", rendered)])

    def _new_step(self, kind: str, details: dict) -> RunStep:
        step = self._step(kind, details)
        self._create_held(step)
        self._publish_step(step)
        return step

    def _step_delta(self, step: RunStep, details: dict) -> None:
        self._publish([("thread.run.step.delta", {
            "id": step.pk, "object": "thread.run.step.delta", "delta": {"step_details": details}})])

    def save_step(self, step: RunStep, *fields: str) -> None:
        """What a hosted tool call changed on the step, while the step is open."""
        changed = fenced(RunStep.objects.filter(pk=step.pk, status="in_progress"), self.run).update(
            **{name: getattr(step, name) for name in fields})
        if not changed:
            check_fence(self.run)

    # -- text ---------------------------------------------------------------------------
    def open_message(self) -> Message:
        """The message and its step, created together (one round trip), holding the text so
        far."""
        if self.message is not None:
            return self.message
        message_id = new_id("message")
        step = self._step("message_creation",
                          {"type": "message_creation", "message_creation": {"message_id": message_id}})
        message = Message(
            id=message_id, project_id=self.run.project_id, thread_id=self.run.thread_id,
            role="assistant", content=self._content([]), status="in_progress",
            assistant_id=self.run.assistant_id, run_id=self.run.pk,
        )
        self._create_held(step, message)
        release_connection()
        self.message_step, self.message = step, message
        self._publish_step(step)
        # Announced empty, as OpenAI does: the text so far follows as deltas.
        rendered = {**render_message(message), "content": []}
        self._publish([("thread.message.created", rendered), ("thread.message.in_progress", rendered)])
        return message

    def on_text(self, fragment: str) -> None:
        self.text += fragment
        # The row holds a text part before the first delta goes out: whoever closes the message
        # early (cancel, expiry) publishes the row, and the SDK indexes it by the deltas it saw.
        if self.message is None:
            # The step's and message's creation and the first delta go out in one round trip:
            # they lie on the path to the first token.
            self._held_events = []
            try:
                self.open_message()  # created with the first text in it
                self._send_text(self._annotations.held_from(self.text, self._sent))
            finally:
                held, self._held_events = self._held_events, None
            if held:
                self._publish(held)
            return
        flusher().submit(self.message.pk, self._content([]), self.run.pk, self.attempt)
        self._send_text(self._annotations.held_from(self.text, self._sent))

    def _send_text(self, end: int) -> None:
        """The text up to `end` as one delta, carrying the annotations of the markers in it
        (indexes relative to the whole message, as the SDK's accumulation expects)."""
        if end <= self._sent or self.message is None:
            return
        found = self._annotations.found(self.run, self.text, self._sent, end)
        text_part: dict = {"value": self.text[self._sent:end]}
        if found or not self._sent:
            text_part["annotations"] = [{"index": len(self.annotations) + i, **a}
                                        for i, a in enumerate(found)]
        self.annotations += found
        self._sent = end
        self._publish([("thread.message.delta", {
            "id": self.message.pk, "object": "thread.message.delta",
            "delta": {"content": [{"index": 0, "type": "text", "text": text_part}]}})])

    def flush(self) -> None:
        """The text so far into the row now, while the message is still open (the text flusher
        saves it about once a second meanwhile)."""
        if self.message is None:
            return
        flusher().withdraw(self.message.pk)
        changed = fenced(Message.objects.filter(pk=self.message.pk, status="in_progress"),
                         self.run).update(content=self._content([]))
        if not changed:
            check_fence(self.run)
        release_connection()

    def _content(self, annotations: list[dict], extra_parts: list[dict] | None = None) -> list[dict]:
        parts = [*(extra_parts or [])]
        if self.text:
            parts.insert(0, {"type": "text", "text": {"value": self.text, "annotations": annotations}})
        return parts

    def publish_message_parts(self, annotations: list[dict], extra_parts: list[dict]) -> None:
        """The text still held back (with its annotations), then annotations found only at the
        end and non-text parts, as deltas."""
        if self.message is None:
            return
        self._send_text(len(self.text))
        content_delta = []
        if annotations:
            content_delta.append({"index": 0, "type": "text", "text": {"annotations": [
                {"index": len(self.annotations) + i, **a} for i, a in enumerate(annotations)]}})
        offset = 1 if self.text else 0
        for position, part in enumerate(extra_parts):
            content_delta.append({"index": offset + position, **part})
        if content_delta:
            self._publish([("thread.message.delta", {
                "id": self.message.pk, "object": "thread.message.delta",
                "delta": {"content": content_delta}})])

    def finish_message(self, *, status: str = "completed", incomplete_reason: str | None = None,
                       annotations: list[dict] | None = None,
                       extra_parts: list[dict] | None = None, batch: Batch | None = None) -> None:
        """Closes the message unless something else (cancel, the expiry sweeper) closed it
        first: the row changes only while in progress, and only a change is published. With
        `batch`, the write (and what follows it) waits for the batch to be sent."""
        if self.message is None:
            return
        message = self.message
        fields: dict = {"content": self._content([*self.annotations, *(annotations or [])], extra_parts),
                        "status": status}
        if status == "completed":
            fields["completed_at"] = unix_now()
        else:
            fields["incomplete_at"] = unix_now()
            fields["incomplete_details"] = {"reason": incomplete_reason}

        def then(changed: int, _rows) -> None:
            if not changed:
                check_fence(self.run)
                return
            for name, value in fields.items():
                setattr(message, name, value)
            events.publish(self.run.pk, f"thread.message.{status}", render_message(message))

        _update(fenced(Message.objects.filter(pk=message.pk, status="in_progress"), self.run),
                fields, then, batch)

    def finish_step(self, step: RunStep | None, status: str, *, usage: tuple[int, int] = (0, 0),
                    last_error: dict | None = None, batch: Batch | None = None) -> None:
        """Closes the step unless something else closed it first (the row, not this object,
        says whether it is still in progress); only a change is published."""
        if step is None:
            return
        if step is self.tool_step:
            self._sync_calls()
        stamp = state.STEP_TIMESTAMP_FIELD[status]
        fields = {"status": status, "prompt_tokens": usage[0], "completion_tokens": usage[1],
                  "last_error": state.step_error(last_error), stamp: unix_now(),
                  "step_details": step.step_details, "tool_io": step.tool_io}

        def then(changed: int, _rows) -> None:
            if not changed:
                check_fence(self.run)
                return
            for name, value in fields.items():
                setattr(step, name, value)
            events.publish(self.run.pk, f"thread.run.step.{status}", render_step(step, self.run.include))

        _update(fenced(RunStep.objects.filter(pk=step.pk, status="in_progress"), self.run),
                fields, then, batch)

    # -- tool calls ---------------------------------------------------------------------
    def on_tool_call(self, call: ToolCallOut, fragment: str) -> None:
        if self.tool_step is None:
            self.tool_step = self._new_step("tool_calls", {"type": "tool_calls", "tool_calls": []})
        step = self.tool_step
        tool = tool_for_call(self.run, call.name)
        if call.index not in self._call_ids:
            self._call_ids[call.index] = new_id("call")
            call_id = self._call_ids[call.index]
            if tool is None:
                record = {"id": call_id, "type": "function",
                          "function": {"name": call.name, "arguments": "", "output": None}}
            else:
                record = tool.initial_record(call_id)
                self._streams[call.index] = tool.call_stream()
            step.step_details["tool_calls"].append(record)
            step.tool_io[call_id] = {"name": call.name, "arguments": ""}
            self._step_delta(step, {"type": "tool_calls", "tool_calls": [{"index": call.index, **record}]})
        self._calls[call.index] = call
        if not fragment:
            return
        if tool is None:
            delta = {"type": "function", "function": {"arguments": fragment}}
        else:
            body = self._streams[call.index].feed(fragment)
            if body is None:
                return
            delta = {"type": tool.kind, **body}
        self._step_delta(step, {"type": "tool_calls", "tool_calls": [{"index": call.index, **delta}]})

    def _sync_calls(self) -> None:
        """The arguments and code so far into the step's records. Done when the step is saved,
        never per fragment: that would copy the growing string every time."""
        for index in self._calls:
            self._sync_call(index)

    def _sync_call(self, index: int) -> None:
        step = self.tool_step
        if step is None:
            return
        call = self._calls[index]
        step.tool_io[self._call_ids[index]]["arguments"] = call.arguments
        if index in self._handed_over:
            return  # the hosted tool's own record replaced the streamed one
        record = step.step_details["tool_calls"][index]
        if record["type"] == "function":
            record["function"]["arguments"] = call.arguments
        elif index in self._streams:
            self._streams[index].sync(record)

    def save_progress(self) -> None:
        """What the turn wrote so far, before the run ends early and its rows are closed."""
        self.flush()
        self._sync_calls()
        if self.tool_step is not None:
            self.save_step(self.tool_step, "step_details", "tool_io")

    def publish_tool_outputs(self, index: int, record: dict) -> None:
        """A hosted tool's results, sent once it is done (the executor saves the step next)."""
        self._sync_call(index)
        self._handed_over.add(index)
        tool = tool_of_kind(record["type"])
        body = tool.output_delta(record) if tool is not None else None
        if body is None:
            return
        self._step_delta(self.tool_step, {"type": "tool_calls", "tool_calls": [
            {"index": index, "type": record["type"], **body}]})
