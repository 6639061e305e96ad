"""Beat's file retention: files whose `expires_after` has passed are deleted."""

from __future__ import annotations

from celery import shared_task

from workers.time_limits import limits


@shared_task(name="workers.files.tasks.expire_files", ignore_result=True, **limits("sweep"))
def expire_files() -> int:
    from apps.files.services import expire_due_files

    return expire_due_files()
