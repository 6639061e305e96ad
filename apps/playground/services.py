"""The one thing the Playground asks of the server besides the public API: a staff member
opening it for a project gets a key of that project (the page then talks to /v1 with it)."""

from __future__ import annotations

from apps.core.errors import not_found
from apps.core.models import ApiKey, Project


def playground_key_name(username: str) -> str:
    return f"playground ({username})"


def issue_staff_key(project_id: str, username: str) -> str:
    """A fresh key for `username`'s Playground on the project; the one it replaces is revoked,
    so opening the Playground again and again leaves one live key per person and project."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        raise not_found("project", project_id)
    name = playground_key_name(username)
    ApiKey.objects.filter(project=project, name=name, revoked=False).update(revoked=True)
    _, raw = ApiKey.issue(project, name=name)
    return raw
