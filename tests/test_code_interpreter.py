"""Code Interpreter end to end: the model (fake upstream) calls `python`, the code runs in the
thread's Docker sandbox, outputs come back in steps, messages, files and the SSE stream."""

from __future__ import annotations

import io
import json

import pytest

from tests.fake_upstream import Reply
from tests.support.sse import stream_raw

pytestmark = pytest.mark.docker  # every test here runs code in a sandbox


@pytest.fixture
def tutor(client):
    return client.beta.assistants.create(
        model="gpt-4o", name="Math Tutor", tools=[{"type": "code_interpreter"}],
        instructions="You are a personal math tutor. Write and run code to answer math questions.")


def code_then_answer(code: str, answer: str):
    """First call: run `code`; once the tool output is back: answer with `answer` (which may
    quote the output with {output})."""
    def respond(request):
        results = [m for m in request["messages"] if m["role"] == "tool"]
        if not results:
            return Reply(tool_calls=[("python", json.dumps({"code": code}))])
        return Reply(text=answer.format(output=results[-1]["content"].strip()))
    return respond


def _code_calls(client, thread_id, run_id):
    steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id, order="asc").data
    return [call for step in steps if step.type == "tool_calls" for call in step.step_details.tool_calls]


def test_the_math_tutor_solves_an_equation_by_running_code(client, tutor, upstream):
    upstream.set_responder(code_then_answer(
        "from sympy import symbols, solve\nx = symbols('x')\nprint(solve(3*x + 11 - 14, x))",
        "The solution is x = {output}."))
    thread = client.beta.threads.create(messages=[
        {"role": "user", "content": "I need to solve the equation `3x + 11 = 14`. Can you help me?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tutor.id,
                                                    poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    call = _code_calls(client, thread.id, run.id)[0]
    assert call.type == "code_interpreter"
    assert "solve(3*x + 11 - 14, x)" in call.code_interpreter.input
    assert call.code_interpreter.outputs[0].type == "logs"
    assert call.code_interpreter.outputs[0].logs.strip() == "[1]"
    answer = client.beta.threads.messages.list(thread.id).data[0].content[0].text.value
    assert answer == "The solution is x = [1]."
    offered = upstream.chat_requests()[0]["tools"][0]["function"]
    assert offered["name"] == "python" and offered["parameters"]["required"] == ["code"]


def test_state_persists_across_runs_on_a_thread_but_not_across_threads(client, tutor, upstream):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "set x"}])
    upstream.set_responder(code_then_answer("x = 41", "done"))
    first = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tutor.id,
                                                      poll_interval_ms=100)
    assert first.status == "completed"
    upstream.set_responder(code_then_answer("print(x + 1)", "{output}"))
    client.beta.threads.messages.create(thread.id, role="user", content="x + 1?")
    second = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tutor.id,
                                                       poll_interval_ms=100)
    assert _code_calls(client, thread.id, second.id)[0].code_interpreter.outputs[0].logs.strip() == "42"

    elsewhere = client.beta.threads.create(messages=[{"role": "user", "content": "x?"}])
    upstream.set_responder(code_then_answer("print(x)", "{output}"))
    isolated = client.beta.threads.runs.create_and_poll(thread_id=elsewhere.id, assistant_id=tutor.id,
                                                         poll_interval_ms=100)
    assert isolated.status == "completed"  # an error in user code is output, not a failed run
    logs = _code_calls(client, elsewhere.id, isolated.id)[0].code_interpreter.outputs[0].logs
    assert "NameError" in logs


def test_a_csv_is_analysed_charted_and_a_new_csv_comes_back(client, tutor, upstream):
    data = client.files.create(file=("sales.csv", io.BytesIO(b"month,amount\njan,10\nfeb,30\nmar,20\n")),
                               purpose="assistants")
    code = (
        "import pandas as pd\nimport matplotlib.pyplot as plt\n"
        "df = pd.read_csv('/mnt/data/sales.csv')\n"
        "df.plot(x='month', y='amount', kind='bar')\n"
        "df.sort_values('amount').to_csv('/mnt/data/sorted.csv', index=False)\n"
        "print(df.amount.sum())"
    )
    upstream.set_responder(code_then_answer(
        code, "Total {output}. Download [sorted.csv](sandbox:/mnt/data/sorted.csv)."))
    thread = client.beta.threads.create(messages=[{
        "role": "user", "content": "Chart my sales",
        "attachments": [{"file_id": data.id, "tools": [{"type": "code_interpreter"}]}]}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tutor.id,
                                                    poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    call = _code_calls(client, thread.id, run.id)[0]
    kinds = [output.type for output in call.code_interpreter.outputs]
    assert kinds == ["logs", "image"]
    assert call.code_interpreter.outputs[0].logs.strip() == "60"

    message = client.beta.threads.messages.list(thread.id).data[0]
    text_part, image_part = message.content
    assert image_part.type == "image_file"
    assert image_part.image_file.file_id == call.code_interpreter.outputs[1].image.file_id
    png = client.files.content(image_part.image_file.file_id).read()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert client.files.retrieve(image_part.image_file.file_id).purpose == "assistants_output"

    annotation = text_part.text.annotations[0]
    assert annotation.type == "file_path" and annotation.text == "sandbox:/mnt/data/sorted.csv"
    value = text_part.text.value
    assert value[annotation.start_index:annotation.end_index] == annotation.text
    generated = client.files.content(annotation.file_path.file_id).read()
    assert generated == b"month,amount\njan,10\nmar,20\nfeb,30\n"


def test_code_interpreter_calls_stream_their_input_and_outputs(http, client, tutor, upstream):
    upstream.set_responder(code_then_answer("print(6 * 7)", "It is {output}."))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "6*7?"}])
    status, events = stream_raw(http, f"/threads/{thread.id}/runs",
                                {"assistant_id": tutor.id, "stream": True})
    assert status == 200
    deltas = [data["delta"]["step_details"]["tool_calls"][0] for name, data in events
              if name == "thread.run.step.delta"]
    assert deltas[0]["type"] == "code_interpreter" and deltas[0]["code_interpreter"] == {"input": "", "outputs": []}
    streamed_input = "".join(d["code_interpreter"].get("input", "") for d in deltas)
    assert streamed_input == "print(6 * 7)"
    outputs = [d["code_interpreter"]["outputs"] for d in deltas if "outputs" in d["code_interpreter"]]
    assert outputs[-1] == [{"index": 0, "type": "logs", "logs": "42\n"}]
    names = [name for name, _ in events]
    assert names[-2:] == ["thread.run.completed", "done"]


def test_deleting_a_thread_closes_its_sandbox(client, tutor, upstream, stack):
    import time

    import redis

    upstream.set_responder(code_then_answer("y = 1", "ok"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tutor.id, poll_interval_ms=100)
    store = redis.Redis.from_url(stack.env["REDIS_URL"])
    assert store.exists(f"sandbox:session:{thread.id}")
    client.beta.threads.delete(thread.id)
    deadline = time.monotonic() + 10
    while store.exists(f"sandbox:session:{thread.id}"):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_beat_reaps_a_session_idle_past_the_limit(client, tutor, upstream, stack):
    """End to end through beat → `maintain_sessions` → the manager: a session whose last use is
    older than SANDBOX_IDLE_TIMEOUT (default 3600 s here) is removed with its container. The
    idle limit itself is exercised with a short value in tests/sandbox/test_sessions.py."""
    import time

    import docker
    import redis

    from workers.sandbox.manager import LAST_USED_KEY

    upstream.set_responder(code_then_answer("z = 1", "ok"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tutor.id, poll_interval_ms=100)
    store = redis.Redis.from_url(stack.env["REDIS_URL"])
    container_id = store.get(f"sandbox:session:{thread.id}").decode()
    time.sleep(2.5)  # a maintenance pass while the session is fresh must leave it alone
    assert store.exists(f"sandbox:session:{thread.id}")
    store.zadd(LAST_USED_KEY, {thread.id: time.time() - 3601})
    deadline = time.monotonic() + 15
    while store.exists(f"sandbox:session:{thread.id}"):
        assert time.monotonic() < deadline, "beat did not reap the idle session"
        time.sleep(0.2)
    daemon = docker.from_env()
    while container_id in [c.id for c in daemon.containers.list(all=True, sparse=True)]:
        assert time.monotonic() < deadline, "the idle session's container was left running"
        time.sleep(0.2)


def test_code_sent_as_raw_arguments_is_streamed_and_run(http, client, tutor, upstream):
    """Some models send the code itself rather than {"code": ...} as the call's arguments."""
    def respond(request):
        results = [m for m in request["messages"] if m["role"] == "tool"]
        if not results:
            return Reply(tool_calls=[("python", "print(1 + 1)")])
        return Reply(text=f"It is {results[-1]['content'].strip()}.")

    upstream.set_responder(respond)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "1+1?"}])
    status, events = stream_raw(http, f"/threads/{thread.id}/runs",
                                {"assistant_id": tutor.id, "stream": True})
    assert status == 200
    deltas = [data["delta"]["step_details"]["tool_calls"][0] for name, data in events
              if name == "thread.run.step.delta"]
    assert "".join(d["code_interpreter"].get("input", "") for d in deltas) == "print(1 + 1)"
    message = client.beta.threads.messages.list(thread.id).data[0]
    assert message.content[0].text.value == "It is 2."


def test_the_model_is_told_where_input_files_are_and_how_to_link_the_files_it_writes(
        client, tutor, upstream):
    # Models other than OpenAI's know neither convention; without the link no file_path appears.
    data = client.files.create(file=("sales.csv", io.BytesIO(b"month,amount\njan,10\n")),
                               purpose="assistants")
    thread = client.beta.threads.create(messages=[{
        "role": "user", "content": "What is in my file?",
        "attachments": [{"file_id": data.id, "tools": [{"type": "code_interpreter"}]}]}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tutor.id,
                                                    poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    system = upstream.last_chat_request()["messages"][0]
    assert system["role"] == "system" and system["content"].startswith(tutor.instructions)
    assert "/mnt/data/sales.csv" in system["content"]
    assert "sandbox:/mnt/data/<name>" in system["content"]
