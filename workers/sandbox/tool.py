"""The hosted Code Interpreter tool, as the run worker sees it: the model calls a function named
`python`; the code runs on the `sandbox` queue; logs and images go into the step, images into
the message, and `sandbox:/mnt/data/...` links in the answer become `file_path` annotations."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from django.conf import settings

from apps.core.redis_client import block_seconds, get_redis
from apps.runs import state
from apps.runs.models import Run, RunStep
from workers.runs.partial_json import string_field
from workers.runs.tools import (
    Annotator,
    HostedResult,
    register_annotator,
    register_hosted_tool,
    register_text_finalizer,
)
from workers.sandbox.manager import error_outcome
from workers.sandbox.tasks import reply_key

SANDBOX_LINK = re.compile(r"sandbox:(/mnt/data/[^\s)\]\"'>]+)")


class Cancelled(Exception):
    pass


def _reply_wait_seconds() -> float:
    return settings.SANDBOX_EXEC_TIMEOUT + 120


def _wait_for_reply(run: Run, call_id: str) -> dict:
    deadline = time.monotonic() + _reply_wait_seconds()
    redis = get_redis()
    while time.monotonic() < deadline:
        # Short blocks, so a cancel is noticed within a second.
        item = redis.blpop(reply_key(call_id), timeout=block_seconds(1.0))
        if item is not None:
            return json.loads(item[1])
        if state.must_stop(run):
            raise Cancelled()
    return error_outcome("SandboxUnavailable", "No sandbox worker answered in time.")


def truncate_middle(text: str, limit: int) -> str:
    """At most `limit` characters (plus the marker): the first and the last half are kept,
    since a traceback or a result usually sits at the end and the context at the start."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters of output cut ...]\n{text[-half:]}"


def _model_output(outcome: dict) -> str:
    parts = [outcome.get("stdout", ""), outcome.get("stderr", "")]
    error = outcome.get("error")
    if error:
        parts.append(error.get("traceback") or f"{error['name']}: {error['value']}")
    if outcome.get("images"):
        parts.append(f"[{len(outcome['images'])} image(s) displayed to the user]")
    if outcome.get("files"):
        parts.append("Files written: " + ", ".join(sorted(outcome["files"])))
    text = "\n".join(part for part in parts if part).strip() or "(no output)"
    return truncate_middle(text, settings.SANDBOX_LOG_MAX_CHARS)


def run_code(run: Run, call_id: str, arguments: str) -> HostedResult:
    from assistants_project.celery import app

    code = string_field(arguments, "code") or arguments
    # Nobody waits for the reply past that: a message redelivered later is dropped unread.
    app.send_task("workers.sandbox.tasks.execute_code", args=[run.pk, call_id, code], queue="sandbox",
                  expires=_reply_wait_seconds())
    try:
        outcome = _wait_for_reply(run, call_id)
    except Cancelled:
        outcome = error_outcome("Cancelled", "The run was cancelled.")
    logs = "\n".join(p for p in (outcome.get("stdout", ""), outcome.get("stderr", "")) if p)
    if outcome.get("error"):
        error = outcome["error"]
        logs = "\n".join(p for p in (logs, error.get("traceback") or f"{error['name']}: {error['value']}") if p)
    outputs: list[dict] = []
    if logs:
        outputs.append({"type": "logs", "logs": truncate_middle(logs, settings.SANDBOX_LOG_MAX_CHARS)})
    outputs += [{"type": "image", "image": {"file_id": file_id}} for file_id in outcome.get("images", [])]
    record = {"type": "code_interpreter", "code_interpreter": {"input": code, "outputs": outputs}}
    return HostedResult(model_output=_model_output(outcome), record=record,
                        extras={"images": outcome.get("images", []), "files": outcome.get("files", {})})


def attach_images(run: Run, text: str) -> tuple[list[dict], list[dict]]:
    """Images made since the run's last message become image_file parts of this one."""
    last_message = (RunStep.objects.filter(run=run, type="message_creation", status="completed")
                    .order_by("-created_ns").values_list("created_ns", flat=True).first()) or 0
    images: list[str] = []
    for io in RunStep.objects.filter(run=run, type="tool_calls", created_ns__gt=last_message) \
            .values_list("tool_io", flat=True):
        for call in io.values():
            images += call.get("images") or []
    return [], [{"type": "image_file", "image_file": {"file_id": file_id, "detail": "auto"}}
                for file_id in images]


def _written_files(run: Run) -> Callable[[re.Match[str]], dict | None]:
    """Links to files the run's code wrote (`sandbox:/mnt/data/...`) stand for those files."""
    files: dict[str, str] = {}
    for io in RunStep.objects.filter(run=run, type="tool_calls").values_list("tool_io", flat=True):
        for call in io.values():
            files.update(call.get("files") or {})

    def annotate(match: re.Match[str]) -> dict | None:
        file_id = files.get(match.group(1))
        return None if file_id is None else {"type": "file_path", "file_path": {"file_id": file_id}}

    return annotate


register_hosted_tool("code_interpreter", run_code)
register_text_finalizer(attach_images)
register_annotator(Annotator(opener="sandbox:", pattern=SANDBOX_LINK, resolve=_written_files))
