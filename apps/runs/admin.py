"""A run page a person can read: status timeline, steps with tool calls and outputs, the
messages it produced, usage and last_error."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from apps.runs.models import Run, RunStep
from apps.threads.models import Message


def _when(timestamp: int | None) -> str:
    if not timestamp:
        return "—"
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


class RunStepInline(admin.StackedInline):
    model = RunStep
    fields = ("id", "type", "status", "tool_calls", "usage_summary", "last_error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("created_ns",)

    @admin.display(description="details")
    def tool_calls(self, step: RunStep):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", _pretty(step.step_details))

    @admin.display(description="usage")
    def usage_summary(self, step: RunStep) -> str:
        usage = step.usage
        return "—" if usage is None else f"{usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion"


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "thread", "assistant_id", "model", "status", "created", "project")
    list_filter = ("status", "model", "project")
    search_fields = ("id", "thread__id", "assistant_id")
    inlines = [RunStepInline]
    fieldsets = (
        (None, {"fields": ("id", "thread", "assistant_id", "model", "status", "timeline")}),
        ("Outcome", {"fields": ("usage_summary", "last_error_text", "incomplete_details",
                                "required_action_text", "produced_messages")}),
        ("Configuration", {"classes": ("collapse",), "fields": (
            "instructions", "tools_text", "tool_resources", "temperature", "top_p",
            "max_prompt_tokens", "max_completion_tokens", "truncation_strategy", "tool_choice",
            "parallel_tool_calls", "response_format", "metadata", "attempts")}),
    )
    readonly_fields = (
        "id", "thread", "assistant_id", "model", "status", "timeline", "usage_summary",
        "last_error_text", "incomplete_details", "required_action_text", "produced_messages",
        "instructions", "tools_text", "tool_resources", "temperature", "top_p",
        "max_prompt_tokens", "max_completion_tokens", "truncation_strategy", "tool_choice",
        "parallel_tool_calls", "response_format", "metadata", "attempts",
    )

    @admin.display(description="created")
    def created(self, run: Run) -> str:
        return _when(run.created_at)

    @admin.display(description="status timeline")
    def timeline(self, run: Run):
        rows = [
            ("created", run.created_at), ("started", run.started_at),
            ("completed", run.completed_at), ("failed", run.failed_at),
            ("cancelled", run.cancelled_at), ("expires", run.expires_at),
        ]
        return format_html_join("", "<div><b>{}</b>: {}</div>",
                                ((label, _when(ts)) for label, ts in rows if ts))

    @admin.display(description="usage")
    def usage_summary(self, run: Run) -> str:
        return (f"{run.prompt_tokens} prompt + {run.completion_tokens} completion = "
                f"{run.prompt_tokens + run.completion_tokens} tokens")

    @admin.display(description="last error")
    def last_error_text(self, run: Run) -> str:
        return "—" if not run.last_error else f"{run.last_error['code']}: {run.last_error['message']}"

    @admin.display(description="required action")
    def required_action_text(self, run: Run):
        if not run.required_action:
            return "—"
        return format_html("<pre>{}</pre>", _pretty(run.required_action))

    @admin.display(description="tools")
    def tools_text(self, run: Run):
        return format_html("<pre>{}</pre>", _pretty(run.tools))

    @admin.display(description="messages produced")
    def produced_messages(self, run: Run):
        messages = Message.objects.filter(run_id=run.pk).order_by("created_ns")
        return format_html_join("", "<p><b>{}</b> ({}): {}</p>",
                                ((m.id, m.status, m.text()[:2000]) for m in messages)) or "—"
