from django.db import models

from apps.core.models import ProjectScoped


class Thread(ProjectScoped):
    id_kind = "thread"

    tool_resources = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "created_ns"])]

    def __str__(self) -> str:
        return self.id


class Message(ProjectScoped):
    id_kind = "message"

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16)
    content = models.JSONField(default=list)
    attachments = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, default="completed")
    incomplete_details = models.JSONField(null=True, blank=True)
    completed_at = models.IntegerField(null=True, blank=True)
    incomplete_at = models.IntegerField(null=True, blank=True)
    assistant_id = models.CharField(max_length=64, null=True, blank=True)
    run_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    # Counted once by the run worker (tiktoken) and reused by every later run's truncation.
    token_count = models.IntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["thread", "created_ns"])]

    def __str__(self) -> str:
        return f"{self.id} ({self.role})"

    def text(self) -> str:
        return "".join(
            part["text"]["value"] for part in self.content if part.get("type") == "text"
        )
