"""Files: store uploads and tool outputs, resolve references. Deleting one (everywhere it is
used) is apps/files/deletion.py."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Iterable

from django.core.files import File as DjangoFile
from django.db.models import Sum

from apps.core.errors import InvalidRequestError, not_found
from apps.core.models import Project
from apps.core.quotas import refuse_storage, storage_limit
from apps.files.models import File

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


def get_file(project: Project, file_id: str) -> File:
    file = File.objects.owned(project, file_id)
    if file is None:
        raise not_found("file", file_id)
    return file


def require_files(project: Project, file_ids: Iterable[str], param: str, item: str = "") -> None:
    """Referenced files must exist in the caller's project. A refusal names the list entry as
    the caller wrote it: `file_ids[2]`, or `files[2].file_id` with `item=".file_id"`."""
    wanted = list(file_ids)
    found = set(File.objects.restrict(project).filter(pk__in=set(wanted)).values_list("pk", flat=True))
    for index, file_id in enumerate(wanted):
        if file_id not in found:
            name = f"{param}[{index}]{item}"
            raise InvalidRequestError(f"Invalid '{name}': no file found with id '{file_id}'.",
                                      param=name)


def require_file(project: Project, file_id: str, param: str) -> None:
    """One referenced file (a scalar `file_id`: its name has no index)."""
    if not File.objects.restrict(project).filter(pk=file_id).exists():
        raise InvalidRequestError(f"Invalid '{param}': no file found with id '{file_id}'.",
                                  param=param)


def create_file(project: Project, *, uploaded, purpose: str,
                expires_after: dict | None = None) -> File:
    """Store an upload (`uploaded`: Django's UploadedFile) checked against the storage quota."""
    check_storage_quota(project, uploaded.size)
    created = File(
        project=project,
        filename=uploaded.name or "upload",
        purpose=purpose,
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
    return File.objects.restrict(project).aggregate(total=Sum("bytes"))["total"] or 0


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


def list_files(project: Project, purpose: str | None):
    queryset = File.objects.restrict(project)
    if purpose:
        queryset = queryset.filter(purpose=purpose)
    return queryset
