"""LOG_FORMAT=json: one JSON object a line, carrying the request, project, thread and run ids
bound for the work in hand, in web requests and in Celery tasks alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from apps.core import log_context

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def test_ids_are_found_among_task_arguments_and_url_kwargs():
    assert log_context.ids_in(["run_abc", 3, "thread_x"]) == {"run_id": "run_abc", "thread_id": "thread_x"}
    assert log_context.ids_in({"thread_id": "thread_1", "run_id": "run_2"}) == {
        "thread_id": "thread_1", "run_id": "run_2"}
    assert log_context.ids_in(["file-1", None]) == {}


def test_a_json_line_carries_the_bound_ids_and_extra_fields():
    probe = (
        "import django, logging; django.setup()\n"
        "from apps.core import log_context\n"
        "with log_context.bound(request_id='req_1', project='7', thread_id='thread_a', run_id='run_b'):\n"
        "    logging.getLogger('workers.runs').warning('resumed %s', 'run_b', extra={'attempt': 2})\n"
        "logging.getLogger('workers.runs').warning('outside')\n"
    )
    env = dict(os.environ, LOG_FORMAT="json", DJANGO_SETTINGS_MODULE="assistants_project.settings")
    result = subprocess.run([sys.executable, "-c", probe], env=env, cwd=BASE_DIR, capture_output=True,
                            text=True, check=True)
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines[0]["message"] == "resumed run_b"
    assert lines[0]["level"] == "WARNING" and lines[0]["logger"] == "workers.runs"
    assert {k: lines[0][k] for k in ("request_id", "project", "thread_id", "run_id", "attempt")} == {
        "request_id": "req_1", "project": "7", "thread_id": "thread_a", "run_id": "run_b", "attempt": 2}
    assert "run_id" not in lines[1] and lines[1]["message"] == "outside"


def test_a_bad_log_format_fails_at_start_up():
    env = dict(os.environ, LOG_FORMAT="xml", DJANGO_SETTINGS_MODULE="assistants_project.settings")
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, cwd=BASE_DIR,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "LOG_FORMAT must be one of json, plain" in result.stderr


def test_a_task_enqueued_by_a_request_logs_under_its_request_id():
    from assistants_project.celery import bind_task_context, carry_request_id, clear_task_context

    headers: dict = {}
    with log_context.bound(request_id="req_42"):
        carry_request_id(headers=headers)
    assert headers == {"request_id": "req_42"}

    class Task:
        class request:  # noqa: N801 (Celery's task.request shape)
            request_id = "req_42"

    bind_task_context(task=Task, args=["run_9"], kwargs={})
    assert log_context.current() == {"request_id": "req_42", "run_id": "run_9"}
    clear_task_context()
    assert log_context.current() == {}
