"""Assistants: create, modify, delete. Views only call these."""

from __future__ import annotations

from django.db import transaction

from apps.assistants.models import Assistant
from apps.assistants.tool_resources import forget_file_in, normalize_tool_resources
from apps.core.errors import not_found
from apps.core.models import Project
from apps.core.openapi import validate_request

_PLAIN_FIELDS = (
    "name", "description", "model", "instructions", "tools", "temperature", "top_p",
    "response_format", "reasoning_effort", "metadata",
)


def get_assistant(project: Project, assistant_id: str, param: str | None = None) -> Assistant:
    assistant = Assistant.objects.filter(project=project, pk=assistant_id).first()
    if assistant is None:
        raise not_found("assistant", assistant_id, param=param)
    return assistant


def _apply(assistant: Assistant, body: dict) -> None:
    for field in _PLAIN_FIELDS:
        if field in body:
            value = body[field]
            if field == "tools" and value is None:
                value = []
            if field == "metadata" and value is None:
                value = {}
            if field == "response_format" and value is None:
                value = "auto"
            setattr(assistant, field, value)


def create_assistant(project: Project, body: dict) -> Assistant:
    validate_request("CreateAssistantRequest", body)
    assistant = Assistant(project=project)
    _apply(assistant, body)
    with transaction.atomic():
        assistant.tool_resources = normalize_tool_resources(project, body.get("tool_resources"))
        assistant.save()
    return assistant


def modify_assistant(project: Project, assistant_id: str, body: dict) -> Assistant:
    validate_request("ModifyAssistantRequest", body)
    with transaction.atomic():
        assistant = get_assistant(project, assistant_id)
        _apply(assistant, body)
        if "tool_resources" in body:
            assistant.tool_resources = normalize_tool_resources(
                project, body["tool_resources"], existing=assistant.tool_resources
            )
        assistant.save()
    return assistant


def delete_assistant(project: Project, assistant_id: str) -> str:
    get_assistant(project, assistant_id).delete()
    return assistant_id


def forget_file(project: Project, file_id: str) -> None:
    for assistant in Assistant.objects.filter(
        project=project, tool_resources__code_interpreter__file_ids__contains=[file_id]
    ):
        assistant.tool_resources = forget_file_in(assistant.tool_resources, file_id)
        assistant.save(update_fields=["tool_resources"])
