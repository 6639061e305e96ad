"""Tenancy in one place: every API object's rows are read through `restrict(project)` (or
`owned(project, pk)`), never through a hand-written project filter a new endpoint could forget.
tests/test_tenancy.py is the end-to-end net; this keeps the spelling single."""

from __future__ import annotations

import ast
from pathlib import Path

from django.apps import apps as django_apps

ROOT = Path(__file__).resolve().parents[2]
# A key belongs to a project but is no API object; its lookups are by hash or by the staff page.
NOT_API_OBJECTS = {"core.ApiKey", "core.ListTombstone"}


def test_every_project_owned_model_restricts_by_project():
    owned = [model for model in django_apps.get_models()
             if model._meta.app_label in ("assistants", "threads", "runs", "files", "vector_stores")
             and any(field.name == "project" for field in model._meta.fields)]
    assert {model._meta.label for model in owned} >= {
        "assistants.Assistant", "threads.Thread", "threads.Message", "runs.Run", "runs.RunStep",
        "files.File", "vector_stores.VectorStore", "vector_stores.FileBatch",
        "vector_stores.VectorStoreFile"}
    for model in owned:
        assert hasattr(model._default_manager, "restrict"), model._meta.label
        assert hasattr(model._default_manager, "owned"), model._meta.label


def _hand_written_project_filters(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("filter", "exclude", "get", "first")
                and any(keyword.arg in ("project", "project_id") for keyword in node.keywords)):
            lines.append(node.lineno)
    return lines


def test_no_module_in_apps_filters_by_project_by_hand():
    found = {}
    for path in (ROOT / "apps").rglob("*.py"):
        if "migrations" in path.parts or path.parent.name == "core":
            continue  # apps/core holds restrict() itself and the project's own keys
        if lines := _hand_written_project_filters(path):
            found[str(path.relative_to(ROOT))] = lines
    allowed = {"apps/playground/services.py"}  # ApiKey, not an API object
    assert set(found) <= allowed, found


def test_restrict_keeps_only_the_projects_rows():
    from apps.assistants.models import Assistant
    from apps.core.models import Project

    query = str(Assistant.objects.restrict(Project(pk="proj_a")).filter(pk="asst_x").query)
    assert '"assistants_assistant"."project_id" = proj_a' in query
