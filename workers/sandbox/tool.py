"""The hosted Code Interpreter tool, as the run worker sees it: the model calls a function named
`python`; the code runs on the `sandbox` queue; logs and images go into the step, images into
the message, and `sandbox:/mnt/data/...` links in the answer become `file_path` annotations."""

from __future__ import annotations

import json
import re
import time

from django.conf import settings

from apps.core.redis_client import get_redis
from apps.runs import state
from apps.runs.models import Run, RunStep
from workers.runs.partial_json import string_field
from workers.runs.tools import HostedResult, register_hosted_tool, register_text_finalizer
from workers.sandbox.tasks import reply_key

MODEL_OUTPUT_LIMIT = 20_000
SANDBOX_LINK = re.compile(r"sandbox:(/mnt/data/[^\s)\]\"'>]+)")


class Cancelled(Exception):
    pass


def _reply_wait_seconds() -> float:
    return settings.SANDBOX_EXEC_TIMEOUT + 120


def _wait_for_reply(run: Run, call_id: str) -> dict:
    deadline = time.monotonic() + _reply_wait_seconds()
    redis = get_redis()
    while time.monotonic() < deadline:
        item = redis.blpop(reply_key(call_id), timeout=1)
        if item is not None:
            return json.loads(item[1])
        if state.must_stop(run):
            raise Cancelled()
    return {"stdout": "", "stderr": "", "images": [], "files": {},
            "error": {"name": "SandboxUnavailable", "traceback": "",
                      "value": "No sandbox worker answered in time."}}


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
    return text[:MODEL_OUTPUT_LIMIT]


def run_code(run: Run, call_id: str, arguments: str) -> HostedResult:
    from assistants_project.celery import app

    code = string_field(arguments, "code") or arguments
    # Nobody waits for the reply past that: a message redelivered later is dropped unread.
    app.send_task("workers.sandbox.tasks.execute_code", args=[run.pk, call_id, code], queue="sandbox",
                  expires=_reply_wait_seconds())
    try:
        outcome = _wait_for_reply(run, call_id)
    except Cancelled:
        outcome = {"stdout": "", "stderr": "", "images": [], "files": {},
                   "error": {"name": "Cancelled", "value": "The run was cancelled.", "traceback": ""}}
    logs = "\n".join(p for p in (outcome.get("stdout", ""), outcome.get("stderr", "")) if p)
    if outcome.get("error"):
        error = outcome["error"]
        logs = "\n".join(p for p in (logs, error.get("traceback") or f"{error['name']}: {error['value']}") if p)
    outputs: list[dict] = []
    if logs:
        outputs.append({"type": "logs", "logs": logs})
    outputs += [{"type": "image", "image": {"file_id": file_id}} for file_id in outcome.get("images", [])]
    record = {"type": "code_interpreter", "code_interpreter": {"input": code, "outputs": outputs}}
    return HostedResult(model_output=_model_output(outcome), record=record,
                        extras={"images": outcome.get("images", []), "files": outcome.get("files", {})})


def attach_outputs(run: Run, text: str) -> tuple[list[dict], list[dict]]:
    """Images made since the run's last message become image_file parts of this one; links to
    generated files become file_path annotations."""
    last_message = (RunStep.objects.filter(run=run, type="message_creation", status="completed")
                    .order_by("-created_ns").values_list("created_ns", flat=True).first()) or 0
    images: list[str] = []
    files: dict[str, str] = {}
    for created_ns, io in RunStep.objects.filter(run=run, type="tool_calls").values_list("created_ns", "tool_io"):
        for call in io.values():
            files.update(call.get("files") or {})
            if created_ns > last_message:
                images += call.get("images") or []
    annotations = []
    for match in SANDBOX_LINK.finditer(text):
        file_id = files.get(match.group(1))
        if file_id:
            annotations.append({"type": "file_path", "text": match.group(0),
                                "file_path": {"file_id": file_id},
                                "start_index": match.start(), "end_index": match.end()})
    parts = [{"type": "image_file", "image_file": {"file_id": file_id, "detail": "auto"}} for file_id in images]
    return annotations, parts


register_hosted_tool("code_interpreter", run_code)
register_text_finalizer(attach_outputs)
