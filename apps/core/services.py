from __future__ import annotations

from django.db import transaction

from apps.core.models import ApiKey, Project


def issue_api_key(project_name: str, key_name: str = "") -> tuple[ApiKey, str]:
    with transaction.atomic():
        project, _ = Project.objects.get_or_create(name=project_name)
        return ApiKey.issue(project, key_name)
