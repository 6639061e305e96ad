"""The run page an operator reads: status timeline, durations, usage, the steps, what each
model call was sent, and the thread's transcript beside it. Runs and steps are read-only here;
the only changes are actions that go through the runs services (cancel, expire)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Prefetch, Q
from django.utils.html import format_html, format_html_join

from apps.core.admin import CreatedFilter, ReadOnlyAdmin
from apps.core.errors import APIError
from apps.runs import services
from apps.runs.admin_display import (
    NS,
    durations_html,
    model_calls_html,
    pretty,
    run_durations,
    seconds,
    step_end_ns,
    transcript_html,
    when,
)
from apps.runs.models import ModelCall, Run, RunStep
from apps.threads.models import Message

ID_SEARCHES = {"step_": "steps__id", "thread_": "thread__id", "asst_": "assistant_id",
               "proj_": "project__id"}


class RunStepInline(admin.StackedInline):
    model = RunStep
    fields = ("id", "type", "status", "duration", "details", "usage_summary", "last_error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("created_ns",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="duration")
    def duration(self, step: RunStep) -> str:
        calls = list(ModelCall.objects.filter(run_id=step.run_id).order_by("started_ns"))
        end = step_end_ns(step, calls)
        return "still running" if end is None else seconds(end - step.created_ns)

    @admin.display(description="details")
    def details(self, step: RunStep):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", pretty(step.step_details))

    @admin.display(description="usage")
    def usage_summary(self, step: RunStep) -> str:
        usage = step.usage
        return "—" if usage is None else f"{usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion"


def _act(modeladmin, request, queryset, act, verb: str) -> None:
    done = 0
    for run in queryset:
        try:
            act(run.project, run.thread_id, run.pk)
            done += 1
        except APIError as error:
            modeladmin.message_user(request, f"{run.pk}: {error.message}", messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{verb} {done} run(s).", messages.SUCCESS)


@admin.action(description="Cancel selected runs")
def cancel_runs(modeladmin, request, queryset) -> None:
    _act(modeladmin, request, queryset, services.cancel_run, "Cancelled")


@admin.action(description="Expire selected runs")
def expire_runs(modeladmin, request, queryset) -> None:
    _act(modeladmin, request, queryset, services.expire_run, "Expired")


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("id", "status", "model", "project", "created", "total", "thread")
    list_filter = ("project", "status", "model", CreatedFilter)
    search_fields = ("id", "thread__id", "assistant_id", "steps__id")
    search_help_text = "Any object id: run, thread, assistant, step, message, or a tool call's id."
    list_select_related = ("project", "thread")
    actions = [cancel_runs, expire_runs]
    inlines = [RunStepInline]
    fieldsets = (
        (None, {"fields": ("id", "status", "thread", "assistant_id", "model", "project",
                           "timeline", "durations")}),
        ("Outcome", {"fields": ("usage_summary", "last_error_text", "incomplete_details",
                                "required_action_text", "produced_messages")}),
        ("What the model was sent", {"fields": ("model_calls",)}),
        ("Configuration", {"classes": ("collapse",), "fields": (
            "instructions", "tools_text", "tool_resources", "temperature", "top_p",
            "max_prompt_tokens", "max_completion_tokens", "truncation_strategy", "tool_choice",
            "parallel_tool_calls", "response_format", "metadata", "attempts")}),
    )
    readonly_fields = (
        "id", "status", "thread", "assistant_id", "model", "project", "timeline", "durations",
        "usage_summary", "last_error_text", "incomplete_details", "required_action_text",
        "produced_messages", "model_calls", "instructions", "tools_text", "tool_resources",
        "temperature", "top_p", "max_prompt_tokens", "max_completion_tokens",
        "truncation_strategy", "tool_choice", "parallel_tool_calls", "response_format",
        "metadata", "attempts",
    )

    def get_search_results(self, request, queryset, search_term):
        """An id of any object a run touched finds it: by prefix where the run row does not
        hold the id itself (messages, tool calls)."""
        term = search_term.strip()
        if term.startswith("msg_"):
            # An assistant's message names its run; a user's message, the runs of its thread.
            message = Message.objects.filter(pk=term).first()
            if message is None:
                return queryset.none(), False
            if message.run_id:
                return queryset.filter(pk=message.run_id), False
            return queryset.filter(thread_id=message.thread_id), False
        if term.startswith("call_"):
            return queryset.filter(Q(steps__step_details__icontains=term)
                                   | Q(required_action__icontains=term)).distinct(), True
        for prefix, field in ID_SEARCHES.items():
            if term.startswith(prefix):
                return queryset.filter(**{field: term}).distinct(), True
        return super().get_search_results(request, queryset, search_term)

    def get_queryset(self, request):
        # The list's durations need only the calls' stamps, fetched once for the page.
        timings = ModelCall.objects.only("run_id", "started_ns", "first_token_ns", "finished_ns")
        return super().get_queryset(request).prefetch_related(Prefetch("model_calls", queryset=timings))

    def _calls(self, run: Run) -> list[ModelCall]:
        return sorted(run.model_calls.all(), key=lambda call: call.started_ns)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = Run.objects.filter(pk=object_id).first()
        extra_context = {**(extra_context or {}),
                         "transcript": transcript_html(run) if run else ""}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="created", ordering="created_ns")
    def created(self, run: Run) -> str:
        return when(run.created_at)

    @admin.display(description="total")
    def total(self, run: Run) -> str:
        return seconds(run_durations(run, self._calls(run))["total"])

    @admin.display(description="status timeline")
    def timeline(self, run: Run):
        rows = [
            ("created", run.created_at), ("started", run.started_at),
            ("completed", run.completed_at), ("failed", run.failed_at),
            ("cancelled", run.cancelled_at), ("expires", run.expires_at),
        ]
        return format_html_join("", "<div><b>{}</b>: {}</div>",
                                ((label, when(ts)) for label, ts in rows if ts))

    @admin.display(description="durations")
    def durations(self, run: Run):
        return durations_html(run, self._calls(run))

    @admin.display(description="what the model was sent")
    def model_calls(self, run: Run):
        return model_calls_html(run, list(ModelCall.objects.filter(run=run).order_by("started_ns")))

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
        return format_html("<pre>{}</pre>", pretty(run.required_action))

    @admin.display(description="tools")
    def tools_text(self, run: Run):
        return format_html("<pre>{}</pre>", pretty(run.tools))

    @admin.display(description="messages produced")
    def produced_messages(self, run: Run):
        produced = Message.objects.filter(run_id=run.pk).order_by("created_ns")
        return format_html_join("", "<p><b>{}</b> ({}): {}</p>",
                                ((m.id, m.status, m.text()[:2000]) for m in produced)) or "—"


@admin.register(RunStep)
class RunStepAdmin(ReadOnlyAdmin):
    list_display = ("id", "run", "type", "status", "project", "created")
    list_filter = ("project", "type", "status", CreatedFilter)
    search_fields = ("id", "run__id", "thread_id", "assistant_id")
    list_select_related = ("project", "run")

    @admin.display(description="created", ordering="created_ns")
    def created(self, step: RunStep) -> str:
        return when(step.created_ns // NS)
