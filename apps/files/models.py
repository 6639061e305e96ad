from __future__ import annotations

from django.db import models

from apps.core.models import ProjectScoped


class File(ProjectScoped):
    id_kind = "file"

    filename = models.CharField(max_length=1024)
    purpose = models.CharField(max_length=32)
    bytes = models.BigIntegerField()
    content = models.FileField(max_length=512, upload_to="")
    mime_type = models.CharField(max_length=255, default="application/octet-stream")
    expires_at = models.IntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "purpose", "created_ns"])]

    def __str__(self) -> str:
        return f"{self.id} {self.filename}"
