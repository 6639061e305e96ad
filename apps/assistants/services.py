"""Assistants: create, modify, delete. Views validate the request and pass its fields."""

from __future__ import annotations

from django.db import transaction

from apps.assistants.models import Assistant
from apps.core.errors import not_found
from apps.core.fields import UNSET
from apps.core.models import Project
from apps.vector_stores.tool_resources import normalize_tool_resources

# The fields a request sets as given; `tool_resources` is checked and normalised apart.
FIELDS = (
    "name", "description", "model", "instructions", "tools", "temperature", "top_p",
    "response_format", "reasoning_effort", "metadata",
)
# What a null means for the fields stored non-null.
_NULL_MEANS = {"tools": list, "metadata": dict, "response_format": lambda: "auto"}


def get_assistant(project: Project, assistant_id: str, param: str | None = None) -> Assistant:
    assistant = Assistant.objects.owned(project, assistant_id)
    if assistant is None:
        raise not_found("assistant", assistant_id, param=param)
    return assistant


def _apply(assistant: Assistant, fields: dict) -> None:
    for field, value in fields.items():
        if field not in FIELDS:
            raise TypeError(f"an assistant has no field {field!r}")
        if value is None and field in _NULL_MEANS:
            value = _NULL_MEANS[field]()
        setattr(assistant, field, value)


def create_assistant(project: Project, *, model: str, tool_resources: dict | None = None,
                     **fields) -> Assistant:
    """`fields`: any of FIELDS besides the model."""
    assistant = Assistant(project=project)
    _apply(assistant, {"model": model, **fields})
    with transaction.atomic():
        assistant.tool_resources = normalize_tool_resources(project, tool_resources)
        assistant.save()
    return assistant


def modify_assistant(project: Project, assistant_id: str, *, tool_resources: dict | None = UNSET,
                     **fields) -> Assistant:
    """Only the given fields change; a given `tool_resources` list replaces the stored one."""
    with transaction.atomic():
        assistant = get_assistant(project, assistant_id)
        _apply(assistant, fields)
        if tool_resources is not UNSET:
            assistant.tool_resources = normalize_tool_resources(
                project, tool_resources, existing=assistant.tool_resources
            )
        assistant.save()
    return assistant


def delete_assistant(project: Project, assistant_id: str) -> str:
    get_assistant(project, assistant_id).delete()
    return assistant_id
