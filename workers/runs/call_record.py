"""Keeps what each model call was sent, and when it answered, as a ModelCall row: the first
thing an operator asks when debugging a wrong answer."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace

from django.db import IntegrityError

from apps.core import metrics
from apps.runs import events
from apps.runs.models import ModelCall, Run
from apps.runs.sql import Batch
from workers.runs.context import MESSAGE_OVERHEAD_TOKENS, Context
from workers.runs.model_calls import Completion, StreamCallbacks

CONTENT_LIMIT = 20_000
SETTING_KEYS = ("temperature", "top_p", "tool_choice", "parallel_tool_calls", "response_format",
                "reasoning_effort", "max_completion_tokens")


def _visible(content: object) -> object:
    """Content as sent, minus inline image bytes (data URLs), and capped."""
    if isinstance(content, str):
        return content if len(content) <= CONTENT_LIMIT else content[:CONTENT_LIMIT] + "…"
    if isinstance(content, list):
        parts = []
        for part in content:
            url = (part.get("image_url") or {}).get("url", "") if isinstance(part, dict) else ""
            if url.startswith("data:"):
                part = {**part, "image_url": {**part["image_url"], "url": url[:40] + "…(inline image)"}}
            parts.append(part)
        return parts
    return content


def _entries(request: dict, context: Context, model: str) -> list[dict]:
    """Each chat message sent, labelled with where it came from. Thread messages reuse their
    stored token counts; the rest (instructions, this run's own tool turns) are counted here."""
    from workers.tokenization import count_tokens

    pending = list(context.selected)
    entries = []
    for sent in request["messages"]:
        entry: dict = {"role": sent["role"], "content": _visible(sent.get("content"))}
        if sent.get("tool_calls"):
            entry["tool_calls"] = sent["tool_calls"]
        if sent.get("tool_call_id"):
            entry["tool_call_id"] = sent["tool_call_id"]
        if sent["role"] == "system":
            entry["source"] = "instructions"
        elif pending and pending[0].role == sent["role"] and not sent.get("tool_calls"):
            message = pending.pop(0)
            entry["source"] = message.pk
            entry["tokens"] = (message.token_count or 0) + MESSAGE_OVERHEAD_TOKENS
        else:
            entry["source"] = "run"
        if "tokens" not in entry:
            text = sent["content"] if isinstance(sent.get("content"), str) else json.dumps(
                sent.get("content") or "") + json.dumps(sent.get("tool_calls") or "")
            entry["tokens"] = count_tokens(text, model) + MESSAGE_OVERHEAD_TOKENS
        entries.append(entry)
    return entries


@dataclass
class CallRecord:
    row: ModelCall

    def watch(self, callbacks: StreamCallbacks) -> StreamCallbacks:
        """The same callbacks, noting when the first token arrived."""

        def first(inner):
            def wrapped(*args):
                if self.row.first_token_ns is None:
                    self.row.first_token_ns = time.time_ns()
                return inner(*args)
            return wrapped

        return replace(callbacks, on_text=first(callbacks.on_text),
                       on_tool_call=first(callbacks.on_tool_call))

    def finish(self, completion: Completion, batch: Batch) -> None:
        """The row, finished, goes into the turn's closing `batch`."""
        row = self.row
        row.finished_ns = time.time_ns()
        row.finish_reason = completion.finish_reason or ""
        row.prompt_tokens = completion.prompt_tokens or None
        row.completion_tokens = completion.completion_tokens or None
        batch.insert(row)
        metrics.model_call_finished(row.model, row.started_ns, row.first_token_ns,
                                    completion.prompt_tokens, completion.completion_tokens)

    def keep(self) -> None:
        """A call that never finished (stopped, failed upstream) is kept as it was sent."""
        try:
            self.row.save(force_insert=True)
        except IntegrityError as gone:
            # The run was deleted with its thread meanwhile: nothing is left to work for.
            raise events.Superseded(f"{self.row.run_id}: the run was deleted") from gone


def record_model_call(run: Run, request: dict, context: Context, budget: int | None = None) -> CallRecord:
    """The record of a call about to be made. Written once, when the call ends (with the turn's
    other writes), rather than inserted now and updated then."""
    return CallRecord(_row(run, request, context, budget, time.time_ns(), context.thread_message_count))


def _row(run: Run, request: dict, context: Context, budget: int | None, started: int,
         thread_messages: int) -> ModelCall:
    return ModelCall(
        run=run, model=request["model"], started_ns=started,
        settings={key: request[key] for key in SETTING_KEYS if key in request},
        tools=request.get("tools") or [],
        messages=_entries(request, context, run.model),
        truncation={"strategy": run.truncation_strategy, "prompt_budget": budget,
                    "max_prompt_tokens": run.max_prompt_tokens,
                    "thread_messages": thread_messages,
                    "kept_thread_messages": len(context.thread_message_ids)},
        estimated_prompt_tokens=context.estimated_tokens)
