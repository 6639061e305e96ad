"""Carries one claimed run forward: context → model → tools → … until it completes, needs the
caller's function outputs, or ends early (cancel, expiry, limits, upstream failure)."""

from __future__ import annotations

import json
import logging

import redis
from django.db import IntegrityError, InterfaceError, OperationalError
from django.db.models import F, Q

from apps.runs import events, state
from apps.runs.models import Run
from apps.runs.sql import Batch
from workers.runs import handback
from workers.runs.call_record import record_model_call
from workers.runs.context import PromptTooLarge, build_context, context_window
from workers.runs.hosted import run_tools, tool_for_call
from workers.runs.model_calls import Completion, Stopped, StreamCallbacks, UpstreamError, stream_completion
from workers.runs.tools import extra_instructions, upstream_tool_choice, upstream_tools
from workers.runs.watch import Watched, watch
from workers.runs.writer import TurnWriter, check_fence, release_connection

logger = logging.getLogger(__name__)

MAX_MODEL_CALLS = 12
COMPLETION_RESERVE = 4096


class Heartbeat:
    """Proves the run is alive while it waits on the model or a sandbox: a Redis key with a
    short TTL, refreshed by the process's run watch (workers/runs/watch.py; no thread or
    database connection of the run's own). Beat resumes runs whose key has lapsed. A beat
    refused because another attempt owns the run marks the execution superseded, and the
    worker stops at its next check."""

    def __init__(self, run_id: str, attempt: int) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.watched: Watched | None = None

    @property
    def superseded(self) -> bool:
        return self.watched is not None and self.watched.superseded

    def __enter__(self) -> Heartbeat:
        self.watched = watch().add(self.run_id, self.attempt)
        return self

    def set_waker(self, waker) -> None:
        if self.watched is not None:
            self.watched.waker = waker

    def stop(self) -> None:
        """No more beats for this attempt (a hand-back revokes it); safe to call twice."""
        if self.watched is not None:
            watch().remove(self.watched)

    def __exit__(self, *exc) -> None:
        self.stop()


def finish_cancelled(run_id: str, attempt: int | None = None) -> None:
    state.end_run(run_id, "cancelled", step_status="cancelled", message_reason="run_cancelled",
                  attempt=attempt)


def fail(run_id: str, code: str, message: str, attempt: int | None = None,
         where: Q | None = None) -> Run | None:
    error = {"code": code, "message": message}
    return state.end_run(run_id, "failed", step_status="failed", message_reason="run_failed",
                         last_error=error, attempt=attempt, where=where)


class RunExecution:
    """One attempt at the run: `run` is the row as this attempt claimed it, so `run.attempts`
    is the fencing token of every write it makes."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.attempt = run.attempts
        self.heartbeat = Heartbeat(run.pk, run.attempts)
        self.turns = 0

    # -- control ------------------------------------------------------------------------
    def should_stop(self, fresh: bool = False) -> bool:
        """While the model streams, the watch's last reading (at most SIGNAL_SECONDS old) is
        enough; between steps (`fresh`) Redis is asked, so what a tool saw is what counts."""
        if handback.hand_back_due():
            return True
        watched = self.heartbeat.watched
        if fresh or watched is None or not watched.signals_read:
            return self.heartbeat.superseded or state.must_stop(self.run)
        # The watch read the signals moments ago: no Redis round trip of this run's own.
        return watched.superseded or watched.told or state.is_overdue(self.run)

    def _stop_now(self) -> None:
        if self.heartbeat.superseded or state.superseded(self.run):
            raise events.Superseded(f"{self.run.pk}: attempt {self.attempt} was replaced")
        if handback.draining() and not state.must_stop(self.run) and self._hand_back():
            return  # must_stop: a cancel, an end elsewhere or the expiry come first
        if events.cancel_requested(self.run.pk):
            state.transition(self.run.pk, "cancelling", where=Q(attempts=self.attempt))
            finish_cancelled(self.run.pk, self.attempt)
        else:
            state.expire(self.run.pk, attempt=self.attempt)
        state.close_leftovers(self.run.pk)

    def _hand_back(self) -> bool:
        """This worker shuts down: the run goes back to the queue for another (handback.py)."""
        self.heartbeat.stop()
        return handback.requeue(self.run.pk, self.attempt, event="handed_back", resumed=False) is not None

    # -- the loop -----------------------------------------------------------------------
    def execute(self) -> None:
        with self.heartbeat:
            for _ in range(MAX_MODEL_CALLS):
                # A draining worker starts no model call: between turns nothing is lost.
                if handback.draining() or self.should_stop(fresh=True):
                    self._stop_now()
                    return
                if not self.turn():
                    return
            fail(self.run.pk, "server_error", "The run exceeded the maximum number of tool rounds.",
                 self.attempt)

    def _request(self, messages: list[dict], remaining_completion: int | None) -> dict:
        run = self.run
        request: dict = {
            "model": run.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        tools = upstream_tools(run)
        if tools:
            request["tools"] = tools
            request["tool_choice"] = upstream_tool_choice(run.tool_choice)
            request["parallel_tool_calls"] = run.parallel_tool_calls
        if run.temperature is not None:
            request["temperature"] = run.temperature
        if run.top_p is not None:
            request["top_p"] = run.top_p
        if isinstance(run.response_format, dict):
            request["response_format"] = run.response_format
        if run.reasoning_effort:
            request["reasoning_effort"] = run.reasoning_effort
        if remaining_completion is not None:
            request["max_completion_tokens"] = remaining_completion
        return request

    def _fixed_tokens(self, instructions: str) -> int:
        from workers.tokenization import count_tokens

        tools = upstream_tools(self.run)
        return count_tokens(instructions, self.run.model) + (
            count_tokens(json.dumps(tools), self.run.model) if tools else 0) + 3

    def turn(self) -> bool:
        """One model call and what follows from it; True to call the model again."""
        run = self.run
        remaining_prompt = (run.max_prompt_tokens - run.prompt_tokens
                            if run.max_prompt_tokens is not None else None)
        remaining_completion = (run.max_completion_tokens - run.completion_tokens
                                if run.max_completion_tokens is not None else None)
        if remaining_completion is not None and remaining_completion <= 0:
            self._incomplete("max_completion_tokens")
            return False
        instructions = "\n\n".join(filter(None, [run.instructions, extra_instructions(run)]))
        window = context_window(run.model)
        budget = window - min(remaining_completion or COMPLETION_RESERVE, window // 4)
        if remaining_prompt is not None:
            budget = min(budget, remaining_prompt)
        fixed = self._fixed_tokens(instructions)
        try:
            if fixed > budget:
                raise PromptTooLarge()
            # Steps exist only once an attempt ran a turn: the first attempt's first has none.
            context = build_context(run, budget, fixed,
                                    may_have_steps=self.attempt > 1 or self.turns > 0)
            self.turns += 1
        except PromptTooLarge:
            if remaining_prompt is not None:
                self._incomplete("max_prompt_tokens")
            else:
                fail(run.pk, "invalid_prompt", "The thread's messages do not fit the model's context window.",
                     self.attempt)
            return False
        messages = context.messages
        if instructions and run.instructions != instructions:
            messages = [m for m in messages if m["role"] != "system"]
            messages.insert(0, {"role": "system", "content": instructions})

        writer = TurnWriter(run)

        def on_tool_call(call, fragment: str) -> None:
            # Text before a tool call is a finished message: it closes (with its step) before
            # the tool_calls step starts, in OpenAI's order; the SDK's handler relies on it.
            if writer.tool_step is None and writer.message is not None:
                self._close_message(writer)
            writer.on_tool_call(call, fragment)

        callbacks = StreamCallbacks(on_text=writer.on_text, on_tool_call=on_tool_call,
                                    should_stop=self.should_stop, set_waker=self.heartbeat.set_waker)
        request = self._request(messages, remaining_completion)
        call = record_model_call(run, request, context, budget)  # what the model is sent (admin)
        release_connection()  # none is held while the model thinks
        try:
            completion = stream_completion(request, run.model, call.watch(callbacks),
                                           project_id=run.project_id,
                                           token_limit=getattr(run, "token_limit", None))
        except Stopped:
            call.keep()
            writer.save_progress()
            self._stop_now()
            return False
        except UpstreamError as error:
            call.keep()
            writer.save_progress()
            logger.warning("run %s failed upstream: %s", run.pk, error.message)
            fail(run.pk, error.code, error.message, self.attempt)
            return False
        # The turn's closing writes (the call's record, token counts, usage, the message and
        # its step, the run's end) go to the database together.
        batch = Batch()
        call.finish(completion, batch)
        context.store_token_counts(batch)
        try:
            return self._after_completion(writer, completion, context.estimated_tokens, batch)
        except IntegrityError as gone:
            # The run was deleted with its thread meanwhile: nothing is left to work for.
            raise events.Superseded(f"{run.pk}: the run was deleted") from gone

    def _usage(self, completion: Completion, estimated_prompt: int, writer: TurnWriter,
               batch: Batch) -> tuple[int, int]:
        prompt = completion.prompt_tokens or estimated_prompt
        if self.run.max_prompt_tokens is not None and prompt > self.run.max_prompt_tokens - self.run.prompt_tokens:
            # The prompt was budgeted with our own (tiktoken) count; an upstream with another
            # tokenizer may count more. Usage reports what the upstream charged, never less.
            logger.warning("run %s: upstream counted %s prompt tokens against %s estimated",
                           self.run.pk, prompt, estimated_prompt)
        produced = completion.completion_tokens
        if not produced:
            from workers.tokenization import count_tokens

            produced = count_tokens(writer.text + "".join(c.arguments for c in completion.tool_calls),
                                    self.run.model)
        batch.update(Run.objects.filter(pk=self.run.pk).filter(state.holds(self.attempt)),
                     then=lambda changed, _rows: changed or check_fence(self.run),
                     prompt_tokens=F("prompt_tokens") + prompt,
                     completion_tokens=F("completion_tokens") + produced)
        self.run.prompt_tokens += prompt
        self.run.completion_tokens += produced
        return prompt, produced

    def _after_completion(self, writer: TurnWriter, completion: Completion, estimated: int,
                          batch: Batch) -> bool:
        run = self.run
        usage = self._usage(completion, estimated, writer, batch)
        if completion.finish_reason == "length":
            self._cut_off(writer, usage, batch)
            return False
        text_usage = (0, 0) if writer.tool_step is not None else usage
        if not completion.tool_calls:
            # The run's answer always gets its message (the SDK's get_final_messages() needs
            # one), even when the model said nothing: it may still carry Code Interpreter images.
            writer.open_message()
            # Marked as the answer: a worker lost between this and the run's end leaves a run
            # that recovery completes, rather than answering twice.
            writer.message_step.tool_io = {**writer.message_step.tool_io, "final_answer": True}
        self._close_message(writer, usage=text_usage, batch=batch)
        if not completion.tool_calls:
            state.end_run(run.pk, "completed", attempt=self.attempt, batch=batch)
            return False
        batch.send()
        return self._handle_tool_calls(writer, completion, usage)

    def _cut_off(self, writer: TurnWriter, usage: tuple[int, int], batch: Batch) -> None:
        """The completion stopped at a length limit. Its text stays as an incomplete message;
        a tool call it was writing is never offered or run, since its arguments may end
        mid-JSON, and its step fails saying so. The run ends `incomplete` with reason
        max_completion_tokens, also when the limit was the upstream model's own output cap
        rather than the run's budget: that is a completion-token limit all the same, and
        `incomplete` is what clients already handle (continue, or allow more tokens), where
        `completed` would hide a cut-off answer and `failed` would invite a retry that stops at
        the same cap."""
        if writer.tool_step is None:
            writer.open_message()
        self._close_message(writer, usage=(0, 0) if writer.tool_step is not None else usage,
                            status="incomplete", batch=batch)
        writer.finish_step(writer.tool_step, "failed", usage=usage, last_error={
            "code": "server_error",
            "message": "The model reached its token limit while writing this tool call, so the "
                       "call was not made."}, batch=batch)
        self._incomplete("max_completion_tokens", batch)

    def _close_message(self, writer: TurnWriter, usage: tuple[int, int] = (0, 0),
                       status: str = "completed", batch: Batch | None = None) -> None:
        """The turn's message, annotated, and its step, closed once."""
        if writer.message is None or writer.message_closed:
            return
        writer.message_closed = True
        annotations, extra_parts = self._finalize_text(writer)
        writer.publish_message_parts(annotations, extra_parts)
        writer.finish_message(status=status, annotations=annotations, extra_parts=extra_parts,
                              incomplete_reason="max_tokens" if status == "incomplete" else None,
                              batch=batch)
        writer.finish_step(writer.message_step, "completed", usage=usage, batch=batch)

    def _finalize_text(self, writer: TurnWriter) -> tuple[list[dict], list[dict]]:
        annotations: list[dict] = []
        extra_parts: list[dict] = []
        for tool in run_tools(self.run):
            found_annotations, found_parts = tool.finalize_text(self.run, writer.text)
            annotations += found_annotations
            extra_parts += found_parts
        return annotations, extra_parts

    def _handle_tool_calls(self, writer: TurnWriter, completion: Completion,
                           usage: tuple[int, int]) -> bool:
        run = self.run
        step = writer.tool_step
        step.prompt_tokens, step.completion_tokens = usage
        function_calls = []
        # The calls as the model made them are in the row before any of them runs: a sandbox
        # task checks its call is still awaited there, and a resumed run finds them.
        writer.save_step(step, "step_details", "tool_io")
        for call in completion.tool_calls:
            tool = tool_for_call(run, call.name)
            record = step.step_details["tool_calls"][call.index]
            if tool is None:
                record["function"]["arguments"] = call.arguments
                function_calls.append({"id": record["id"], "type": "function",
                                       "function": {"name": call.name, "arguments": call.arguments}})
                continue
            result = tool.execute(run, record["id"], call.arguments)
            step.step_details["tool_calls"][call.index] = {**result.record, "id": record["id"]}
            step.tool_io[record["id"]].update(output=result.model_output, **result.extras)
            writer.publish_tool_outputs(call.index, step.step_details["tool_calls"][call.index])
            writer.save_step(step, "step_details", "tool_io")
            if self.should_stop(fresh=True):
                self._stop_now()
                return False
        writer.save_step(step, "step_details", "tool_io", "prompt_tokens", "completion_tokens")
        if function_calls:
            waiting = state.transition(run.pk, "requires_action", attempt=self.attempt, required_action={
                "type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": function_calls}})
            if waiting is not None:
                events.publish_done(run.pk)
            elif events.cancel_requested(run.pk):
                # cancelled meanwhile; else it already ended elsewhere
                finish_cancelled(run.pk, self.attempt)
            else:
                check_fence(run)
            return False
        writer.finish_step(step, "completed", usage=usage)
        return True

    def _incomplete(self, reason: str, batch: Batch | None = None) -> None:
        state.end_run(self.run.pk, "incomplete", message_reason="max_tokens",
                      incomplete_details={"reason": reason}, attempt=self.attempt, batch=batch)


# The database or Redis going away mid-run is no fault of the run: it is left in progress, its
# heartbeat stops, and recovery resumes it once the service is back.
INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)


def _answered(run: Run) -> bool:
    """The run's answer is written: its last step is the closed final message."""
    from apps.runs.models import RunStep

    last = RunStep.objects.filter(run=run).order_by("-created_ns").first()
    return (last is not None and last.type == "message_creation" and last.status == "completed"
            and bool((last.tool_io or {}).get("final_answer")))


def execute_run(run_id: str) -> None:
    claimed = state.claim(run_id)
    if claimed is None:
        # Not claimable: only now is the row read, to see whether something is left to do.
        run = Run.objects.filter(pk=run_id).first()
        if run is None:
            return
        if run.status == "cancelling":
            finish_cancelled(run_id)
        elif run.status in ("queued", "requires_action") and state.is_overdue(run):
            state.expire(run_id)
        return  # else someone else has it, or it already ended
    attempt = claimed.attempts
    if claimed.resumes:
        state.log_recovery(run_id, "resumed_by_worker", attempt, resumes=claimed.resumes)
    try:
        if claimed.resumes and _answered(claimed):
            state.log_recovery(run_id, "resumed_run_already_answered", attempt)
            state.end_run(run_id, "completed", attempt=attempt)
            return
        for tool in run_tools(claimed):
            problem = tool.preflight(claimed)
            if problem:
                fail(run_id, "invalid_prompt", problem, attempt)
                return
        RunExecution(claimed).execute()
    except events.Superseded as refused:
        state.log_recovery(run_id, "stale_worker_stopped", attempt, reason=str(refused))
    except INFRASTRUCTURE_ERRORS as error:
        state.log_recovery(run_id, "left_for_recovery", attempt, error=type(error).__name__)
    except Exception:
        # A bug must not leave the run hanging until orphan recovery: fail it now, then let
        # the error be logged as what it is.
        fail(run_id, "server_error", "The server had an error while processing the run.", attempt)
        raise
