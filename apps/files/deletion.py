"""Deleting a file removes it everywhere it is used: assistants' and threads' Code Interpreter
`file_ids`, vector stores (its chunks go with the cascade), sandboxes holding a copy, storage.
Its own module, so the file services need none of the apps that refer to files."""

from __future__ import annotations

import time

from django.db import transaction

from apps.assistants.models import Assistant
from apps.core.errors import NotFoundError
from apps.core.models import Project
from apps.core.queue import FORGET_SANDBOX_FILE_TASK, enqueue
from apps.files.models import File
from apps.files.services import get_file
from apps.threads.models import Thread
from apps.vector_stores.services import lock_store_files
from apps.vector_stores.tool_resources import forget_file_in


def delete_file(project: Project, file_id: str) -> str:
    file = get_file(project, file_id)
    with transaction.atomic():
        lock_store_files(file=file)
        for model in (Assistant, Thread):
            _forget_in(model, project, file.pk)
        storage_name = file.content.name
        storage = file.content.storage
        file.delete()
        if storage_name:
            transaction.on_commit(lambda: storage.delete(storage_name))
        transaction.on_commit(lambda: _leave_sandboxes(file_id))
    return file_id


def _forget_in(model: type[Assistant] | type[Thread], project: Project, file_id: str) -> None:
    for owner in model.objects.restrict(project).filter(
        tool_resources__code_interpreter__file_ids__contains=[file_id]
    ):
        owner.tool_resources = forget_file_in(owner.tool_resources, file_id)
        owner.save(update_fields=["tool_resources"])


def _leave_sandboxes(file_id: str) -> None:
    """Sandboxes holding a copy of the file (an input placed in /mnt/data, or the file a run
    wrote there) lose it now, not when their session ends."""
    from apps.core.redis_client import get_redis
    from workers.sandbox.manager import holding_key

    if get_redis().exists(holding_key(file_id)):
        enqueue(FORGET_SANDBOX_FILE_TASK, file_id)


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
