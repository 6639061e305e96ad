"""Carries one claimed run forward: context → model → tools → … until it completes, needs the
caller's function outputs, or ends early (cancel, expiry, limits, upstream failure)."""

from __future__ import annotations

import json
import logging
import threading
import time

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.models import F, Q

from apps.runs import events, state
from apps.runs.models import Run
from workers.runs.call_record import record_model_call
from workers.runs.context import PromptTooLarge, build_context, context_window
from workers.runs.hosted import run_tools, tool_for_call
from workers.runs.model_calls import Completion, Stopped, StreamCallbacks, UpstreamError, stream_completion
from workers.runs.tools import extra_instructions, upstream_tool_choice, upstream_tools
from workers.runs.writer import TurnWriter, check_fence

logger = logging.getLogger(__name__)

MAX_MODEL_CALLS = 12
COMPLETION_RESERVE = 4096


class Heartbeat:
    """Proves the run is alive while it waits on the model or a sandbox: a Redis key with a
    short TTL, refreshed by a thread (no database connection held for it). Beat resumes runs
    whose key has lapsed. A Redis error never ends the beating (it is retried at once, then
    quickly, and logged); a beat refused because another attempt owns the run marks the
    execution superseded, and the worker stops at its next check."""

    RETRY_SECONDS = 0.25

    def __init__(self, run_id: str, attempt: int) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.superseded = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def beat(self) -> bool:
        """One beat; False when Redis could not be reached."""
        try:
            owned = events.heartbeat(self.run_id, self.attempt, ttl=settings.RUN_ORPHAN_AFTER_SECONDS)
        except Exception as error:  # noqa: BLE001 (any failure to beat is retried, never fatal)
            logger.warning("heartbeat failed for run %s (attempt %s), retrying: %s",
                           self.run_id, self.attempt, error)
            return False
        if not owned and not self.superseded:
            self.superseded = True
            state.log_recovery(self.run_id, "heartbeat_refused_superseded", self.attempt)
        return True

    def _beat(self) -> None:
        # Four beats per orphan timeout: one missed beat never looks like a dead worker.
        interval = settings.RUN_ORPHAN_AFTER_SECONDS / 4
        failing_since: float | None = None
        while True:
            if self.beat():
                if failing_since is not None:
                    state.log_recovery(self.run_id, "heartbeat_restored", self.attempt,
                                       after_seconds=round(time.monotonic() - failing_since, 2))
                    failing_since = None
                wait = interval
            else:
                failing_since = failing_since or time.monotonic()
                wait = min(self.RETRY_SECONDS, interval)
            if self._stop.wait(wait):
                return

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()


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

    # -- control ------------------------------------------------------------------------
    def should_stop(self) -> bool:
        return self.heartbeat.superseded or state.must_stop(self.run)

    def _stop_now(self) -> None:
        if self.heartbeat.superseded or state.superseded(self.run):
            raise events.Superseded(f"{self.run.pk}: attempt {self.attempt} was replaced")
        if events.cancel_requested(self.run.pk):
            state.transition(self.run.pk, "cancelling", where=Q(attempts=self.attempt))
            finish_cancelled(self.run.pk, self.attempt)
        else:
            state.expire(self.run.pk, attempt=self.attempt)
        state.close_leftovers(self.run.pk)

    # -- the loop -----------------------------------------------------------------------
    def execute(self) -> None:
        with self.heartbeat:
            for _ in range(MAX_MODEL_CALLS):
                if self.should_stop():
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
            context = build_context(run, budget, fixed)
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
                                    should_stop=self.should_stop)
        request = self._request(messages, remaining_completion)
        call = record_model_call(run, request, context, budget)  # what the model is sent (admin)
        try:
            completion = stream_completion(request, run.model, call.watch(callbacks),
                                           project_id=run.project_id)
        except Stopped:
            writer.save_progress()
            self._stop_now()
            return False
        except UpstreamError as error:
            writer.save_progress()
            logger.warning("run %s failed upstream: %s", run.pk, error.message)
            fail(run.pk, error.code, error.message, self.attempt)
            return False
        call.finish(completion)
        return self._after_completion(writer, completion, context.estimated_tokens)

    def _usage(self, completion: Completion, estimated_prompt: int, writer: TurnWriter) -> tuple[int, int]:
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
        if not Run.objects.filter(pk=self.run.pk).filter(state.holds(self.attempt)).update(
                prompt_tokens=F("prompt_tokens") + prompt,
                completion_tokens=F("completion_tokens") + produced):
            check_fence(self.run)
        self.run.prompt_tokens += prompt
        self.run.completion_tokens += produced
        return prompt, produced

    def _after_completion(self, writer: TurnWriter, completion: Completion, estimated: int) -> bool:
        run = self.run
        usage = self._usage(completion, estimated, writer)
        if completion.finish_reason == "length":
            self._cut_off(writer, usage)
            return False
        text_usage = (0, 0) if writer.tool_step is not None else usage
        if not completion.tool_calls:
            # The run's answer always gets its message (the SDK's get_final_messages() needs
            # one), even when the model said nothing: it may still carry Code Interpreter images.
            writer.open_message()
            # Marked as the answer: a worker lost between this and the run's end leaves a run
            # that recovery completes, rather than answering twice.
            writer.message_step.tool_io = {**writer.message_step.tool_io, "final_answer": True}
        self._close_message(writer, usage=text_usage)
        if not completion.tool_calls:
            state.end_run(run.pk, "completed", attempt=self.attempt)
            return False
        return self._handle_tool_calls(writer, completion, usage)

    def _cut_off(self, writer: TurnWriter, usage: tuple[int, int]) -> None:
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
                            status="incomplete")
        writer.finish_step(writer.tool_step, "failed", usage=usage, last_error={
            "code": "server_error",
            "message": "The model reached its token limit while writing this tool call, so the "
                       "call was not made."})
        self._incomplete("max_completion_tokens")

    def _close_message(self, writer: TurnWriter, usage: tuple[int, int] = (0, 0),
                       status: str = "completed") -> None:
        """The turn's message, annotated, and its step, closed once."""
        if writer.message is None or writer.message_closed:
            return
        writer.message_closed = True
        annotations, extra_parts = self._finalize_text(writer)
        writer.publish_message_parts(annotations, extra_parts)
        writer.finish_message(status=status, annotations=annotations, extra_parts=extra_parts,
                              incomplete_reason="max_tokens" if status == "incomplete" else None)
        writer.finish_step(writer.message_step, "completed", usage=usage)

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
            if self.should_stop():
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

    def _incomplete(self, reason: str) -> None:
        state.end_run(self.run.pk, "incomplete", message_reason="max_tokens",
                      incomplete_details={"reason": reason}, attempt=self.attempt)


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
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return
    if run.status == "cancelling":
        finish_cancelled(run_id)
        return
    if run.status in ("queued", "requires_action") and state.is_overdue(run):
        state.expire(run_id)
        return
    claimed = state.transition(run_id, "in_progress", attempts=F("attempts") + 1)
    if claimed is None:
        return  # someone else has it, or it already ended
    attempt = claimed.attempts
    events.claim(run_id, attempt)
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
