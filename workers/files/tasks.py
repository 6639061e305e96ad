"""Beat's file retention: files whose `expires_after` has passed are deleted."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.files.tasks.expire_files", ignore_result=True)
def expire_files() -> int:
    from apps.files.deletion import expire_due_files

    return expire_due_files()
