"""Three agent frameworks that ship Assistants agents, unmodified, against the real stack: per
framework an echo turn, a function call round trip, a file search with citations (streamed for
Semantic Kernel) and a Code Interpreter run on an uploaded file. Each framework's scenarios run
in one process of its own virtualenv (see conftest.py); only the model is the fake upstream."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import make_client, new_project_key
from tests.fake_upstream import Reply
from tests.frameworks.conftest import run_client

KB_TEXT = "The tide is driven by the pull of the moon, twice a day."
SALES_CSV = "month,amount\njan,10\nfeb,30\nmar,20\n"
SUM_CODE = ("import csv\nrows = list(csv.DictReader(open('/mnt/data/sales.csv')))\n"
            "print(sum(int(row['amount']) for row in rows))")
MARKER = re.compile(r"【\d+:\d+†kb\.txt】")


def _since_last_user(messages: list[dict]) -> list[dict]:
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return messages[last_user + 1:]


def respond(request: dict) -> Reply | None:
    """The model, as each scenario needs it: call the tool the question asks for, then answer
    from the tool's output (a search answer cites its marker). Otherwise the fake's echo."""
    messages = request.get("messages") or []
    offered = {tool["function"]["name"] for tool in request.get("tools") or []}
    results = [m for m in _since_last_user(messages) if m["role"] == "tool"]
    if results:
        output = results[-1]["content"]
        if output.startswith("【"):
            marker = output.split("\n", 1)[0]
            # Cut into 3-character chunks: the marker reaches the server in pieces.
            return Reply(text=f"The moon drives the tide{marker}, twice a day.", chunk_chars=3)
        return Reply(text=f"Result: {output.strip()}")
    question = " ".join(part for m in messages if m["role"] == "user"
                        for part in ([m["content"]] if isinstance(m["content"], str) else
                                     [p.get("text", "") for p in m["content"]]))[-200:].lower()
    # Semantic Kernel names functions after their plugin: WeatherPlugin-get_weather.
    weather = [name for name in offered if name.endswith("get_weather")]
    if "weather" in question and weather:
        return Reply(tool_calls=[(weather[0], json.dumps({"city": "Paris"}))])
    if "tide" in question and "file_search" in offered:
        return Reply(tool_calls=[("file_search", json.dumps({"queries": ["what drives the tide"]}))])
    if "sales.csv" in question and "python" in offered:
        return Reply(tool_calls=[("python", json.dumps({"code": SUM_CODE}))])
    return None


@pytest.fixture(scope="module", params=["langchain", "autogen", "semantic_kernel"])
def framework(request, framework_pythons, stack, api_base, fake_upstream, tmp_path_factory):
    """One framework's run of every scenario: (name, outcomes, an SDK client of its project)."""
    name = request.param
    work_dir = tmp_path_factory.mktemp(name)
    (work_dir / "kb.txt").write_text(KB_TEXT)
    (work_dir / "sales.csv").write_text(SALES_CSV)
    key = new_project_key(stack)
    fake_upstream.reset()
    fake_upstream.set_responder(respond)
    try:
        outcomes = run_client(framework_pythons[name], name, {
            "base_url": api_base, "api_key": key, "work_dir": str(work_dir),
            "files": {"kb": str(work_dir / "kb.txt"), "sales": str(work_dir / "sales.csv")}})
    finally:
        fake_upstream.reset()
    sdk = make_client(api_base, key)
    yield name, outcomes, sdk
    sdk.close()


def _outcome(framework, scenario: str) -> dict:
    name, outcomes, _ = framework
    outcome = outcomes[scenario]
    assert outcome["ok"], f"{name} {scenario}:\n{outcome['error']}"
    return outcome


def test_an_echo_turn(framework):
    outcome = _outcome(framework, "echo")
    assert outcome["text"] == f"You said: hello from {framework[0].replace('_', ' ')}"


def test_a_function_call_round_trip(framework):
    outcome = _outcome(framework, "function_call")
    assert outcome["text"] == "Result: Sunny and 21 degrees in Paris"
    _, _, sdk = framework
    runs = sdk.beta.threads.runs.list(outcome["thread_id"]).data
    assert runs[0].status == "completed"
    steps = sdk.beta.threads.runs.steps.list(runs[0].id, thread_id=outcome["thread_id"]).data
    calls = [c for s in steps if s.type == "tool_calls" for c in s.step_details.tool_calls]
    assert len(calls) == 1 and calls[0].function.name.endswith("get_weather")
    assert calls[0].function.output == "Sunny and 21 degrees in Paris"


def test_a_file_search_with_citations(framework):
    name, _, sdk = framework
    outcome = _outcome(framework, "file_search")
    marker = MARKER.search(outcome["text"])
    assert marker, outcome["text"]
    annotations = outcome["annotations"]
    assert len(annotations) == 1, annotations
    annotation = annotations[0]
    if name == "semantic_kernel":
        # Streamed: Semantic Kernel keeps only annotations that arrive with their text.
        assert annotation["quote"] == marker.group(0)
        cited = annotation["file_id"]
    else:
        assert annotation["type"] == "file_citation" and annotation["text"] == marker.group(0)
        cited = annotation["file_citation"]["file_id"]
    assert outcome["text"][annotation["start_index"]:annotation["end_index"]] == marker.group(0)
    kb_files = [f.id for f in sdk.files.list().data if f.filename == "kb.txt"]
    assert cited in kb_files


@pytest.mark.docker
def test_a_code_interpreter_run_with_an_uploaded_file(framework):
    _, _, sdk = framework
    outcome = _outcome(framework, "code_interpreter")
    assert outcome["text"] == "Result: 60"  # what the code printed in the sandbox
    runs = sdk.beta.threads.runs.list(outcome["thread_id"]).data
    steps = sdk.beta.threads.runs.steps.list(runs[0].id, thread_id=outcome["thread_id"]).data
    calls = [c for s in steps if s.type == "tool_calls" for c in s.step_details.tool_calls]
    assert calls[0].type == "code_interpreter"
    assert calls[0].code_interpreter.input == SUM_CODE
    assert calls[0].code_interpreter.outputs[0].logs.strip() == "60"
