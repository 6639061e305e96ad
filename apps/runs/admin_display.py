"""What the run admin page shows beyond the row itself: durations measured from the rows'
nanosecond stamps, the thread's transcript, and what each model call was sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from apps.runs.models import TERMINAL_STATUSES, ModelCall, Run, RunStep
from apps.threads.models import Message

NS = 1_000_000_000


def when(timestamp: int | None) -> str:
    if not timestamp:
        return "—"
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def seconds(ns: int | None) -> str:
    if ns is None:
        return "—"
    value = ns / NS
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def ended_at(run: Run) -> int | None:
    """Unix seconds the run ended, for a terminal run."""
    if run.status not in TERMINAL_STATUSES:
        return None
    return run.completed_at or run.failed_at or run.cancelled_at or run.expires_at or None


def run_durations(run: Run, calls: list[ModelCall]) -> dict[str, int | None]:
    """Queue wait (created until the first model call), time to first token, total. The end of a
    run is stamped in whole seconds, the model calls in nanoseconds: the total takes the later."""
    first = calls[0] if calls else None
    tokens = [c.first_token_ns for c in calls if c.first_token_ns]
    total = None
    end = ended_at(run)
    if end is not None:
        finished = max((c.finished_ns or 0 for c in calls), default=0)
        total = max(finished, end * NS) - run.created_ns
        total = max(total, 0)
    return {
        "queue_wait": first.started_ns - run.created_ns if first else None,
        "first_token": min(tokens) - run.created_ns if tokens else None,
        "total": total,
    }


def step_end_ns(step: RunStep, calls: list[ModelCall]) -> int | None:
    """A message step closes with the model call that wrote it; a tool step when the next model
    call starts (its results are in), else at its own stamp (whole seconds)."""
    during = [c for c in calls if c.started_ns <= step.created_ns and c.finished_ns
              and c.finished_ns >= step.created_ns]
    if step.type == "message_creation" and during and step.status == "completed":
        return during[-1].finished_ns
    later = [c.started_ns for c in calls if c.started_ns > step.created_ns]
    if step.type == "tool_calls" and later and step.status == "completed":
        return later[0]
    stamp = step.completed_at or step.failed_at or step.cancelled_at or step.expired_at
    return max(stamp * NS, step.created_ns) if stamp else None


def durations_html(run: Run, calls: list[ModelCall]) -> SafeString:
    found = run_durations(run, calls)
    rows = [("queue wait (created → first model call)", found["queue_wait"]),
            ("time to first token", found["first_token"]),
            ("total", found["total"])]
    html = format_html_join("", "<div><b>{}</b>: {}</div>",
                            ((label, seconds(value)) for label, value in rows))
    if found["total"] is None:
        html += format_html("<div>{}</div>", f"still {run.status}")
    return html


def transcript_html(run: Run) -> SafeString:
    messages = Message.objects.filter(thread_id=run.thread_id).order_by("created_ns", "pk")
    rows = []
    for message in messages:
        own = message.run_id == run.pk
        rows.append(format_html(
            '<div class="transcript-message{}"><div class="transcript-meta"><b>{}</b> · {} · {}{}</div>'
            '<div class="transcript-text">{}</div></div>',
            " this-run" if own else "", message.role, message.id, message.status,
            " · this run" if own else (f" · {message.run_id}" if message.run_id else ""),
            message.text() or "(no text)"))
    return mark_safe("".join(rows)) if rows else mark_safe("<p>No messages.</p>")


def _message_rows(call: ModelCall) -> SafeString:
    rows = []
    for index, entry in enumerate(call.messages):
        content = entry.get("content")
        text = content if isinstance(content, str) else pretty(content)
        if entry.get("tool_calls"):
            text = (text + "\n" if content else "") + pretty(entry["tool_calls"])
        rows.append(format_html(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><pre class='sent'>{}</pre></td></tr>",
            index + 1, entry.get("role"), entry.get("source", ""), entry.get("tokens", ""),
            text or ""))
    return mark_safe("".join(rows))


def model_calls_html(run: Run, calls: list[ModelCall]) -> SafeString:
    if not calls:
        return mark_safe("<p>No model call yet.</p>")
    parts = []
    for number, call in enumerate(calls, start=1):
        truncation = call.truncation or {}
        tools = [t.get("function", {}).get("name", t.get("type")) for t in call.tools]
        sent_tokens = sum(int(entry.get("tokens") or 0) for entry in call.messages)
        parts.append(format_html(
            "<div class='model-call'><h3>Model call {} · {}</h3>"
            "<div><b>started</b>: +{} · <b>first token</b>: {} · <b>duration</b>: {} · "
            "<b>finish</b>: {} · <b>usage</b>: {} prompt + {} completion (estimated {})</div>"
            "<div><b>settings</b>: <code>{}</code></div>"
            "<div><b>tools offered</b>: {}</div>"
            "<div><b>truncation</b>: {} — kept {} of {} thread messages; prompt budget {}; "
            "{} tokens in the messages sent</div>"
            "<table class='sent-messages'><thead><tr><th>#</th><th>role</th><th>source</th>"
            "<th>tokens</th><th>content</th></tr></thead><tbody>{}</tbody></table>"
            "<details><summary>tools as sent (JSON)</summary><pre>{}</pre></details></div>",
            number, call.model, seconds(call.started_ns - run.created_ns),
            seconds(call.first_token_ns - call.started_ns) if call.first_token_ns else "—",
            seconds(call.finished_ns - call.started_ns) if call.finished_ns else "did not finish",
            call.finish_reason or "—", call.prompt_tokens if call.prompt_tokens is not None else "—",
            call.completion_tokens if call.completion_tokens is not None else "—",
            call.estimated_prompt_tokens, json.dumps(call.settings, ensure_ascii=False),
            ", ".join(tools) or "none", json.dumps(truncation.get("strategy") or {}),
            truncation.get("kept_thread_messages", "?"), truncation.get("thread_messages", "?"),
            truncation.get("prompt_budget", "—"), sent_tokens, _message_rows(call),
            pretty(call.tools)))
    return mark_safe("".join(parts))
