"""`tool_resources` on assistants, threads and runs: validated references, stored normalised as
{"code_interpreter": {"file_ids": [...]}, "file_search": {"vector_store_ids": [...]}}."""

from __future__ import annotations

from django.apps import apps as django_apps

from apps.core.models import Project
from apps.files.services import require_files


def _vector_store_services():
    if not django_apps.is_installed("apps.vector_stores"):
        return None
    from apps.vector_stores import services

    return services


def normalize_tool_resources(
    project: Project,
    raw: dict | None,
    param: str = "tool_resources",
    *,
    owner_kind: str = "assistant",
    existing: dict | None = None,
) -> dict:
    """Check every reference and turn `vector_stores` helpers into real vector stores.
    Keys not given keep their `existing` value (modify semantics: a given list replaces)."""
    result = dict(existing or {})
    if not raw:
        return result if raw is None else {}
    code = raw.get("code_interpreter")
    if code is not None:
        file_ids = list(code.get("file_ids") or [])
        require_files(project, file_ids, f"{param}.code_interpreter.file_ids")
        result["code_interpreter"] = {"file_ids": file_ids}
    search = raw.get("file_search")
    if search is not None:
        store_ids = list(search.get("vector_store_ids") or [])
        vector_store_services = _vector_store_services()
        if vector_store_services is not None:
            vector_store_services.require_vector_stores(
                project, store_ids, f"{param}.file_search.vector_store_ids"
            )
            for helper in search.get("vector_stores") or []:
                store = vector_store_services.create_from_helper(
                    project, helper, owner_kind=owner_kind
                )
                store_ids.append(store.pk)
        result["file_search"] = {"vector_store_ids": store_ids}
    return result


def forget_file_in(tool_resources: dict, file_id: str) -> dict | None:
    """The tool_resources without `file_id`, or None when it was not referenced."""
    code = (tool_resources or {}).get("code_interpreter") or {}
    if file_id not in (code.get("file_ids") or []):
        return None
    updated = dict(tool_resources)
    updated["code_interpreter"] = {"file_ids": [f for f in code["file_ids"] if f != file_id]}
    return updated
