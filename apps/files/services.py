"""Files: store uploads, resolve references, delete everywhere they are used."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Iterable

from django.core.files import File as DjangoFile
from django.db import transaction
from django.db.models import Sum

from apps.core.errors import InvalidRequestError, NotFoundError, not_found
from apps.core.models import Project
from apps.core.openapi import validate_request
from apps.core.quotas import refuse_storage, storage_limit
from apps.files.models import File

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


def get_file(project: Project, file_id: str) -> File:
    file = File.objects.filter(project=project, pk=file_id).first()
    if file is None:
        raise not_found("file", file_id)
    return file


def require_files(project: Project, file_ids: Iterable[str], param: str, item: str = "") -> None:
    """Referenced files must exist in the caller's project. A refusal names the list entry as
    the caller wrote it: `file_ids[2]`, or `files[2].file_id` with `item=".file_id"`."""
    wanted = list(file_ids)
    found = set(File.objects.filter(project=project, pk__in=set(wanted)).values_list("pk", flat=True))
    for index, file_id in enumerate(wanted):
        if file_id not in found:
            name = f"{param}[{index}]{item}"
            raise InvalidRequestError(f"Invalid '{name}': no file found with id '{file_id}'.",
                                      param=name)


def require_file(project: Project, file_id: str, param: str) -> None:
    """One referenced file (a scalar `file_id`: its name has no index)."""
    if not File.objects.filter(project=project, pk=file_id).exists():
        raise InvalidRequestError(f"Invalid '{param}': no file found with id '{file_id}'.",
                                  param=param)


def _form_to_request(form) -> dict:
    """Rebuild the multipart form as the JSON-shaped CreateFileRequest the spec validates;
    the SDK spells nested fields with brackets (expires_after[anchor])."""
    request: dict = {}
    for key in form:
        value = form.get(key)
        if key.startswith("expires_after[") and key.endswith("]"):
            inner = key[len("expires_after["):-1]
            if inner == "seconds" and isinstance(value, str) and value.lstrip("-").isdigit():
                value = int(value)
            request.setdefault("expires_after", {})[inner] = value
        else:
            request[key] = value
    return request


def create_file(project: Project, form, uploaded) -> File:
    request = _form_to_request(form)
    if uploaded is None:
        raise InvalidRequestError("Missing required parameter: 'file'.", param="file",
                                  code="missing_required_parameter")
    request["file"] = "<binary>"
    validate_request("CreateFileRequest", request)
    check_storage_quota(project, uploaded.size)
    expires_after = request.get("expires_after")
    created = File(
        project=project,
        filename=uploaded.name or "upload",
        purpose=request["purpose"],
        bytes=uploaded.size,
        mime_type=uploaded.content_type
        or mimetypes.guess_type(uploaded.name or "")[0]
        or "application/octet-stream",
    )
    if expires_after:
        created.expires_at = int(time.time()) + int(expires_after["seconds"])
    created.save()
    created.content.save(f"{project.pk}/{created.pk}", DjangoFile(uploaded), save=False)
    File.objects.filter(pk=created.pk).update(content=created.content.name)
    return created


def storage_used(project: Project) -> int:
    return File.objects.filter(project=project).aggregate(total=Sum("bytes"))["total"] or 0


def check_storage_quota(project: Project, incoming: int) -> None:
    """Uploads past the project's storage quota are refused (files the tools write are not:
    a run must not fail halfway for it)."""
    limit = storage_limit(project)
    if limit is None:
        return
    used = storage_used(project)
    if used + incoming > limit:
        raise refuse_storage(project, used, incoming, limit)


def create_output_file(project: Project, filename: str, data: bytes, mime_type: str) -> File:
    """A file produced by a tool (Code Interpreter), purpose `assistants_output`."""
    from django.core.files.base import ContentFile

    created = File(project=project, filename=filename, purpose="assistants_output",
                   bytes=len(data), mime_type=mime_type)
    created.save()
    created.content.save(f"{project.pk}/{created.pk}", ContentFile(data), save=False)
    File.objects.filter(pk=created.pk).update(content=created.content.name)
    return created


def delete_file(project: Project, file_id: str) -> str:
    from apps.assistants.services import forget_file as forget_in_assistants
    from apps.threads.services import forget_file as forget_in_threads
    from apps.vector_stores.services import lock_store_files

    file = get_file(project, file_id)
    with transaction.atomic():
        lock_store_files(file=file)
        forget_in_assistants(project, file.pk)
        forget_in_threads(project, file.pk)
        storage_name = file.content.name
        storage = file.content.storage
        file.delete()
        if storage_name:
            transaction.on_commit(lambda: storage.delete(storage_name))
        transaction.on_commit(lambda: _leave_sandboxes(file_id))
    return file_id


def _leave_sandboxes(file_id: str) -> None:
    """Sandboxes holding a copy of the file (an input placed in /mnt/data, or the file a run
    wrote there) lose it now, not when their session ends."""
    from apps.core.redis_client import get_redis
    from assistants_project.celery import app
    from workers.sandbox.manager import holding_key

    if get_redis().exists(holding_key(file_id)):
        app.send_task("workers.sandbox.file_tasks.forget_file", args=[file_id], queue="sandbox")


def expire_due_files(now: int | None = None) -> int:
    """Beat: files past their `expires_after` are deleted as a DELETE would, their vector store
    chunks and sandbox copies included."""
    due = list(File.objects.filter(expires_at__lte=now or int(time.time()))
               .values_list("project_id", "pk")[:500])
    for project_id, file_id in due:
        try:
            delete_file(Project(pk=project_id), file_id)
        except NotFoundError:
            continue  # deleted meanwhile
    return len(due)


def list_files(project: Project, purpose: str | None):
    queryset = File.objects.filter(project=project)
    if purpose:
        queryset = queryset.filter(purpose=purpose)
    return queryset
