"""`tool_resources` on assistants, threads and runs: validated references, stored normalised as
{"code_interpreter": {"file_ids": [...]}, "file_search": {"vector_store_ids": [...]}}.
Every read of that shape goes through the accessors here."""

from __future__ import annotations

from apps.core.models import Project
from apps.files.services import require_files
from apps.vector_stores import services as vector_store_services
from apps.vector_stores.models import VectorStore


def code_interpreter_file_ids(tool_resources: dict | None) -> list[str]:
    return list(((tool_resources or {}).get("code_interpreter") or {}).get("file_ids") or [])


def vector_store_ids(tool_resources: dict | None) -> list[str]:
    return list(((tool_resources or {}).get("file_search") or {}).get("vector_store_ids") or [])


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
        vector_store_services.require_vector_stores(
            project, store_ids, f"{param}.file_search.vector_store_ids"
        )
        for helper in search.get("vector_stores") or []:
            store = vector_store_services.create_from_helper(project, helper, owner_kind=owner_kind)
            store_ids.append(store.pk)
        result["file_search"] = {"vector_store_ids": store_ids}
    return result


def merged_resources(*sources: dict | None) -> dict:
    """A run's resources: the assistant's, the thread's and its own, each list deduplicated."""
    file_ids: list[str] = []
    store_ids: list[str] = []
    for source in sources:
        file_ids += code_interpreter_file_ids(source)
        store_ids += vector_store_ids(source)
    merged: dict = {}
    if file_ids:
        merged["code_interpreter"] = {"file_ids": list(dict.fromkeys(file_ids))}
    if store_ids:
        merged["file_search"] = {"vector_store_ids": list(dict.fromkeys(store_ids))}
    return merged


def forget_file_in(tool_resources: dict, file_id: str) -> dict | None:
    """The tool_resources without `file_id`, or None when it was not referenced."""
    file_ids = code_interpreter_file_ids(tool_resources)
    if file_id not in file_ids:
        return None
    updated = dict(tool_resources)
    updated["code_interpreter"] = {"file_ids": [f for f in file_ids if f != file_id]}
    return updated


def attach_to_thread_store(project: Project, thread, file_ids: list[str]) -> None:
    """Message attachments for file_search land in the thread's vector store, made on demand."""
    store = VectorStore.objects.restrict(project).filter(
        pk__in=vector_store_ids(thread.tool_resources)).first()
    if store is None:
        store = vector_store_services.create_store(
            project, file_ids=file_ids, default_expiry=vector_store_services.THREAD_STORE_EXPIRY)
        resources = dict(thread.tool_resources or {})
        resources["file_search"] = {"vector_store_ids": [store.pk]}
        thread.tool_resources = resources
        thread.save(update_fields=["tool_resources"])
        return
    vector_store_services.attach_files(project, store, file_ids)
