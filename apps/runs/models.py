from django.db import models
from django.db.models import Q

from apps.core.models import ProjectScoped, auto
from apps.core.sql import first_row
from apps.threads.models import Thread

ACTIVE_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")
TERMINAL_STATUSES = ("cancelled", "failed", "completed", "incomplete", "expired")


def usage_of(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class Run(ProjectScoped):
    id_kind = "run"

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="runs")
    assistant_id = models.CharField(max_length=64)
    status = models.CharField(max_length=20, default="queued", db_index=True)
    required_action = models.JSONField(null=True, blank=True)
    last_error = models.JSONField(null=True, blank=True)
    incomplete_details = models.JSONField(null=True, blank=True)
    expires_at = models.IntegerField(null=True, blank=True)
    started_at = models.IntegerField(null=True, blank=True)
    cancelled_at = models.IntegerField(null=True, blank=True)
    failed_at = models.IntegerField(null=True, blank=True)
    completed_at = models.IntegerField(null=True, blank=True)

    # The assistant's configuration with the run's overrides, frozen at creation.
    model = models.TextField()
    instructions = models.TextField(default="", blank=True)
    tools = models.JSONField(default=list, blank=True)
    tool_resources = models.JSONField(default=dict, blank=True)
    temperature = models.FloatField(null=True, blank=True)
    top_p = models.FloatField(null=True, blank=True)
    # 64-bit: the contract sets no upper bound, and the request schema holds them to int64.
    max_prompt_tokens = models.BigIntegerField(null=True, blank=True)
    max_completion_tokens = models.BigIntegerField(null=True, blank=True)
    truncation_strategy = models.JSONField(default=dict)
    tool_choice = models.JSONField(default=auto, null=True)
    parallel_tool_calls = models.BooleanField(default=True)
    response_format = models.JSONField(default=auto, null=True)
    reasoning_effort = models.CharField(max_length=16, null=True, blank=True)
    include = models.JSONField(default=list, blank=True)

    # Usage adds up over every model call of a long run: 64-bit, like the limits above.
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    # How often a worker claimed it; the current value fences the claiming worker's writes.
    attempts = models.IntegerField(default=0)
    # How often recovery resumed it after its worker died; past the limit it fails instead.
    resumes = models.IntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["thread", "created_ns"]),
            models.Index(fields=["status", "expires_at"]),
        ]
        constraints = [
            # One active run per thread, guaranteed by the database.
            models.UniqueConstraint(
                fields=["thread"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="one_active_run_per_thread",
            )
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def usage(self) -> dict | None:
        if self.status not in TERMINAL_STATUSES and self.status != "requires_action":
            return None
        return usage_of(self.prompt_tokens, self.completion_tokens)


def active_run_id(thread_id: str) -> str | None:
    """The thread's active run, if any (the constraint above allows one at most)."""
    run = first_row(Run, {"thread_id": thread_id, "status": ACTIVE_STATUSES}, names=("id",))
    return None if run is None else run.pk


class RunStep(ProjectScoped):
    id_kind = "step"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    thread_id = models.CharField(max_length=64)
    assistant_id = models.CharField(max_length=64)
    type = models.CharField(max_length=20)
    status = models.CharField(max_length=20, default="in_progress")
    step_details = models.JSONField(default=dict)
    last_error = models.JSONField(null=True, blank=True)
    expired_at = models.IntegerField(null=True, blank=True)
    cancelled_at = models.IntegerField(null=True, blank=True)
    failed_at = models.IntegerField(null=True, blank=True)
    completed_at = models.IntegerField(null=True, blank=True)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    # What the model itself sent and got back for hosted tool calls, by call id; kept apart
    # from step_details, which is the public record.
    tool_io = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["run", "created_ns"])]

    def __str__(self) -> str:
        return f"{self.id} {self.type} ({self.status})"

    @property
    def usage(self) -> dict | None:
        if self.status == "in_progress":
            return None
        return usage_of(self.prompt_tokens, self.completion_tokens)


class ModelCall(models.Model):
    """What one upstream model call of a run was sent (the messages truncation kept, with their
    token counts, the tools offered, the model and its settings) and how it went, for operators
    debugging an answer in the admin. Internal: never part of the public API."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="model_calls")
    model = models.TextField()
    # Request settings besides messages and tools (temperature, tool_choice, limits, ...).
    settings = models.JSONField(default=dict, blank=True)
    tools = models.JSONField(default=list, blank=True)
    # One entry per chat message sent: role, source (instructions / thread message id / the
    # run's own turn), tokens and the content as sent (inline image data elided).
    messages = models.JSONField(default=list, blank=True)
    truncation = models.JSONField(default=dict, blank=True)
    estimated_prompt_tokens = models.IntegerField(default=0)
    started_ns = models.BigIntegerField()
    first_token_ns = models.BigIntegerField(null=True, blank=True)
    finished_ns = models.BigIntegerField(null=True, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True, default="")
    prompt_tokens = models.IntegerField(null=True, blank=True)
    completion_tokens = models.IntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["run", "started_ns"])]

    def __str__(self) -> str:
        return f"{self.model} call of {self.run_id}"
