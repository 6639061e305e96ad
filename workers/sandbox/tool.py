"""The hosted Code Interpreter tool, as the run worker sees it: the model calls a function named
`python`; the code runs on the `sandbox` queue; logs and images go into the step, images into
the message, and `sandbox:/mnt/data/...` links in the answer become `file_path` annotations."""

from __future__ import annotations

import json
import posixpath
import re
import time
from collections.abc import Callable

from django.conf import settings

from apps.core.redis_client import block_seconds, get_redis
from apps.runs import state
from apps.runs.models import Run, RunStep
from workers.runs.hosted import Annotator, CallStream, HostedResult, HostedTool
from workers.runs.partial_json import StreamedStringField, string_field
from workers.sandbox.manager import error_outcome
from workers.sandbox.tasks import _input_files, reply_key

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
    from apps.core.queue import EXECUTE_CODE_TASK, enqueue

    code = string_field(arguments, "code") or arguments
    # Nobody waits for the reply past that: a message redelivered later is dropped unread.
    enqueue(EXECUTE_CODE_TASK, run.pk, call_id, code, expires=_reply_wait_seconds())
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
    if not any(tool.get("type") == "code_interpreter" for tool in run.tools):
        return [], []  # no code ran, so no image was made: spares every other run two queries
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


class _RawCode:
    """Code sent as the arguments themselves, read the way StreamedStringField reads JSON."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    @property
    def value(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def feed(self, fragment: str) -> str:
        self._parts.append(fragment)
        return fragment


class CodeStream(CallStream):
    """The code of a call as it streams, shown as the step's `input`. Models mostly send
    {"code": "..."}; some send the code itself as the arguments: the first character that is
    not a space tells which."""

    def __init__(self) -> None:
        self._reader: StreamedStringField | _RawCode | None = None
        self._leading = ""

    def feed(self, fragment: str) -> dict | None:
        if self._reader is None:
            if not fragment.strip():
                self._leading += fragment
                return None
            self._reader = StreamedStringField("code") if fragment.lstrip().startswith("{") else _RawCode()
            fragment, self._leading = self._leading + fragment, ""
        code = self._reader.feed(fragment)
        return {"code_interpreter": {"input": code}} if code else None

    def sync(self, record: dict) -> None:
        if self._reader is not None:
            record["code_interpreter"]["input"] = self._reader.value


class CodeInterpreter(HostedTool):
    kind = "code_interpreter"
    function_name = "python"
    description = (
        "Run Python code in a stateful Jupyter-like sandbox (numpy, pandas, matplotlib "
        "available). Files the user attached are in /mnt/data; save files you create there. "
        "Printed output and the last expression's value are returned. No internet access."
    )
    parameters = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "The Python code to run."}},
        "required": ["code"],
    }
    annotator = Annotator(opener="sandbox:", pattern=SANDBOX_LINK, resolve=_written_files)

    def instructions(self, run: Run) -> str:
        # OpenAI's models know this convention; others must be told, or no file_path appears.
        from apps.files.models import File

        # Named as the sandbox places them (workers/sandbox/tasks._sync_inputs).
        names = sorted({posixpath.basename(name) or pk for name, pk in File.objects.filter(
            project_id=run.project_id, pk__in=_input_files(run)).values_list("filename", "pk")})
        listed = ("The user's files: " + ", ".join(f"/mnt/data/{name}" for name in names) + ". "
                  if names else "")
        return ("The python tool's files are in /mnt/data: a file the user gave is at "
                f"/mnt/data/<name>. {listed}When your code writes a file for the user, save it in "
                "/mnt/data and link it in your answer as sandbox:/mnt/data/<name>, for example "
                "[report.csv](sandbox:/mnt/data/report.csv).")

    def execute(self, run: Run, call_id: str, arguments: str) -> HostedResult:
        return run_code(run, call_id, arguments)

    def initial_record(self, call_id: str) -> dict:
        return {"id": call_id, "type": "code_interpreter", "code_interpreter": {"input": "", "outputs": []}}

    def call_stream(self) -> CallStream:
        return CodeStream()

    def output_delta(self, record: dict) -> dict | None:
        outputs = [{"index": i, **o} for i, o in enumerate(record["code_interpreter"]["outputs"])]
        return {"code_interpreter": {"outputs": outputs}}

    def finalize_text(self, run: Run, text: str) -> tuple[list[dict], list[dict]]:
        return attach_images(run, text)
