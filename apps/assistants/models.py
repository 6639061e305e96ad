from django.db import models

from apps.core.models import ProjectScoped, auto


class Assistant(ProjectScoped):
    id_kind = "assistant"

    name = models.CharField(max_length=256, null=True, blank=True)
    description = models.CharField(max_length=512, null=True, blank=True)
    model = models.TextField()
    instructions = models.TextField(null=True, blank=True)
    tools = models.JSONField(default=list, blank=True)
    tool_resources = models.JSONField(default=dict, blank=True)
    temperature = models.FloatField(null=True, blank=True)
    top_p = models.FloatField(null=True, blank=True)
    response_format = models.JSONField(default=auto, null=True, blank=True)
    reasoning_effort = models.CharField(max_length=16, null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "created_ns"])]

    def __str__(self) -> str:
        return f"{self.id} {self.name or ''}".strip()
