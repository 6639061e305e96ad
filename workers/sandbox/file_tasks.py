"""The `sandbox` queue's part of deleting a File: every live session holding a copy of it
removes that copy at once."""

from __future__ import annotations

from celery import shared_task

from workers.time_limits import limits


@shared_task(name="workers.sandbox.file_tasks.forget_file", ignore_result=True, **limits("sandbox_files"))
def forget_file(file_id: str) -> list[str]:
    from workers.sandbox.service import get_manager

    return get_manager().forget_file(file_id)
