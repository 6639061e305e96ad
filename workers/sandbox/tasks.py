"""The `sandbox` queue: runs code for a run's Code Interpreter call in a sandbox and hands
the result back through Redis; keeps the warm pool full and reaps idle sessions."""

from __future__ import annotations

import json
import logging
import mimetypes
import posixpath

from celery import shared_task

from apps.core.redis_client import get_redis
from workers.sandbox.manager import error_outcome, placed_key
from workers.time_limits import limits

logger = logging.getLogger(__name__)
REPLY_TTL_SECONDS = 600


def reply_key(call_id: str) -> str:
    return f"sandbox:reply:{call_id}"


def _input_files(run) -> list[str]:
    from apps.threads.models import Message
    from apps.vector_stores.tool_resources import code_interpreter_file_ids

    file_ids = code_interpreter_file_ids(run.tool_resources)
    for attachments in Message.objects.filter(thread_id=run.thread_id).exclude(attachments=None) \
            .values_list("attachments", flat=True):
        for attachment in attachments or []:
            if any(tool.get("type") == "code_interpreter" for tool in attachment.get("tools", [])):
                file_ids.append(attachment["file_id"])
    return list(dict.fromkeys(file_ids))


def _sync_inputs(manager, run) -> None:
    """Place the run's files in /mnt/data under their original names, once per container."""
    from apps.files.models import File

    placed = placed_key(manager.sandbox_id(run.thread_id, project=run.project_id))
    redis = get_redis()
    for file in File.objects.filter(project_id=run.project_id, pk__in=_input_files(run)):
        if redis.sismember(placed, file.pk):
            continue
        with file.content.open("rb") as handle:
            manager.put_file(run.thread_id, posixpath.basename(file.filename) or file.pk, handle,
                             file_id=file.pk)
        redis.sadd(placed, file.pk)
        redis.expire(placed, 86_400)


def _awaited_run(run_id: str, call_id: str):
    """The run, when it is live and still waits on this very call; None for a stale task (a
    redelivery after a worker died, or a call of an attempt recovery replaced), which must
    never execute code in the thread's live kernel."""
    from apps.runs.models import Run, RunStep
    from apps.runs.state import is_overdue

    run = Run.objects.filter(pk=run_id, status="in_progress").first()
    if run is None or is_overdue(run):
        return None
    waiting = RunStep.objects.filter(run=run, type="tool_calls", status="in_progress",
                                     step_details__contains={"tool_calls": [{"id": call_id}]})
    return run if waiting.exists() else None


@shared_task(name="workers.sandbox.tasks.execute_code", ignore_result=True, **limits("sandbox"))
def execute_code(run_id: str, call_id: str, code: str) -> None:
    from apps.files.services import create_output_file
    from apps.runs.state import log_recovery
    from workers.sandbox.service import get_manager

    run = _awaited_run(run_id, call_id)
    if run is None:
        log_recovery(run_id, "stale_sandbox_task_refused", None, call=call_id)
        return
    manager = get_manager()
    outcome: dict
    try:
        _sync_inputs(manager, run)
        result = manager.execute(run.thread_id, code)
        images = [create_output_file(run.project, f"{call_id}-{index}.png", data, "image/png").pk
                  for index, data in enumerate(result.images)]
        files = {}
        for changed in result.files:
            path = changed["path"]
            data = manager.get_file(run.thread_id, path)
            mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
            files[path] = create_output_file(run.project, posixpath.basename(path), data, mime).pk
            manager.remember_file(run.thread_id, path, files[path])
        outcome = {"stdout": result.stdout, "stderr": result.stderr, "error": result.error,
                   "images": images, "files": files}
    except Exception as exc:  # noqa: BLE001 (the run must hear back, whatever broke)
        logger.exception("sandbox execution for %s failed", call_id)
        outcome = error_outcome("SandboxError", str(exc))
    redis = get_redis()
    redis.rpush(reply_key(call_id), json.dumps(outcome))
    redis.expire(reply_key(call_id), REPLY_TTL_SECONDS)


@shared_task(name="workers.sandbox.tasks.close_session", ignore_result=True, **limits("sandbox_files"))
def close_session(thread_id: str) -> None:
    from workers.sandbox.service import get_manager

    get_manager().close_session(thread_id)


@shared_task(name="workers.sandbox.tasks.maintain_sessions", ignore_result=True, **limits("sweep"))
def maintain_sessions() -> list[str]:
    from workers.sandbox.service import get_manager

    manager = get_manager()
    reaped = manager.reap_idle()
    manager.fill_pool()
    return reaped
