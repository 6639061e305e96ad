"""Runs executed by a real Celery worker against the fake upstream, through the official SDK."""

from __future__ import annotations

import json
import time

import openai
import pytest

from tests.fake_upstream import Reply

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture
def assistant(client):
    return client.beta.assistants.create(model="gpt-4o", instructions="You are terse.",
                                         tools=[WEATHER_TOOL, TIME_TOOL])


def test_create_and_poll_completes_with_the_models_text(client, assistant, upstream):
    upstream.enqueue(Reply(text="The answer is 42."))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is it?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "completed"
    assert run.completed_at is not None and run.expires_at is None
    assert run.instructions == "You are terse." and run.model == "gpt-4o"

    messages = client.beta.threads.messages.list(thread.id, order="asc")
    reply = messages.data[-1]
    assert reply.role == "assistant" and reply.run_id == run.id
    assert reply.assistant_id == assistant.id and reply.status == "completed"
    assert reply.content[0].text.value == "The answer is 42."

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id)
    assert [s.type for s in steps.data] == ["message_creation"]
    assert steps.data[0].step_details.message_creation.message_id == reply.id
    assert steps.data[0].status == "completed"
    step_total = sum(s.usage.total_tokens for s in steps.data)
    assert run.usage.total_tokens == step_total == run.usage.prompt_tokens + run.usage.completion_tokens
    assert run.usage.prompt_tokens > 0 and run.usage.completion_tokens > 0

    sent = upstream.last_chat_request()
    assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent["messages"][-1] == {"role": "user", "content": "What is it?"}
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]

    by_run = client.beta.threads.messages.list(thread.id, run_id=run.id)
    assert [m.id for m in by_run.data] == [reply.id]
    assert client.beta.threads.runs.steps.retrieve(steps.data[0].id, thread_id=thread.id,
                                                   run_id=run.id).id == steps.data[0].id


def test_run_overrides_and_additional_instructions_reach_the_model(client, assistant, upstream):
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, model="gpt-4o-mini",
        additional_instructions="Answer in French.", temperature=0.2, top_p=0.5,
        additional_messages=[{"role": "user", "content": "Bonjour"}],
        response_format={"type": "json_object"}, tools=[WEATHER_TOOL], metadata={"k": "v"},
        poll_interval_ms=50,
    )
    assert run.status == "completed" and run.model == "gpt-4o-mini"
    assert run.instructions == "You are terse.\n\nAnswer in French."
    sent = upstream.last_chat_request()
    assert sent["model"] == "gpt-4o-mini"
    assert sent["temperature"] == 0.2 and sent["top_p"] == 0.5
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["messages"][0]["content"] == "You are terse.\n\nAnswer in French."
    assert sent["messages"][-1] == {"role": "user", "content": "Bonjour"}
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    modified = client.beta.threads.runs.update(run.id, thread_id=thread.id, metadata={"k": "w"})
    assert modified.metadata == {"k": "w"}
    assert [r.id for r in client.beta.threads.runs.list(thread.id)] == [run.id]


def test_a_function_round_trip_with_parallel_calls(client, assistant, upstream):
    upstream.enqueue(Reply(tool_calls=[("get_weather", '{"city": "Paris"}'), ("get_time", "{}")]))
    upstream.enqueue(Reply(text="Sunny at noon."))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert run.usage is not None

    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    assert step.type == "tool_calls" and step.status == "in_progress"
    assert [c.function.output for c in step.step_details.tool_calls] == [None, None]

    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, poll_interval_ms=50,
        tool_outputs=[{"tool_call_id": calls[0].id, "output": "18C"},
                      {"tool_call_id": calls[1].id, "output": "12:00"}],
    )
    assert done.status == "completed"
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert [c.function.output for c in steps[0].step_details.tool_calls] == ["18C", "12:00"]
    assert done.usage.total_tokens == sum(s.usage.total_tokens for s in steps)

    second = upstream.last_chat_request()["messages"]
    assert second[-3]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert second[-2] == {"role": "tool", "tool_call_id": calls[0].id, "content": "18C"}
    assert second[-1] == {"role": "tool", "tool_call_id": calls[1].id, "content": "12:00"}
    assert client.beta.threads.messages.list(thread.id).data[0].content[0].text.value == "Sunny at noon."


def test_wrong_tool_outputs_are_refused(client, assistant, upstream):
    upstream.enqueue(Reply(tool_calls=[("get_weather", '{"city": "Oslo"}'), ("get_time", "{}")]))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    calls = run.required_action.submit_tool_outputs.tool_calls
    submit = client.beta.threads.runs.submit_tool_outputs
    with pytest.raises(openai.BadRequestError) as missing:
        submit(run_id=run.id, thread_id=thread.id,
               tool_outputs=[{"tool_call_id": calls[0].id, "output": "x"}])
    assert calls[1].id in missing.value.body["message"]
    with pytest.raises(openai.BadRequestError) as unknown:
        submit(run_id=run.id, thread_id=thread.id, tool_outputs=[
            {"tool_call_id": calls[0].id, "output": "x"}, {"tool_call_id": calls[1].id, "output": "y"},
            {"tool_call_id": "call_unknown", "output": "z"}])
    assert "call_unknown" in unknown.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        submit(run_id=run.id, thread_id=thread.id, tool_outputs=[
            {"tool_call_id": calls[0].id, "output": "x"}, {"tool_call_id": calls[0].id, "output": "y"}])
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "requires_action"
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)


def test_tool_choice_and_parallel_tool_calls_are_passed_through(client, assistant, upstream):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    for choice, expected in [
        ("required", "required"),
        ({"type": "function", "function": {"name": "get_time"}},
         {"type": "function", "function": {"name": "get_time"}}),
        ("none", "none"),
    ]:
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, tool_choice=choice,
            parallel_tool_calls=False, poll_interval_ms=50)
        assert run.status == "completed"
        assert run.parallel_tool_calls is False
        sent = upstream.last_chat_request()
        assert sent["tool_choice"] == expected
        assert sent["parallel_tool_calls"] is False
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id,
                                        tool_choice={"type": "function", "function": {"name": "nope"}})


def test_the_thread_is_locked_while_a_run_is_active(client, assistant, upstream):
    upstream.enqueue(Reply(text="slow", first_token_delay=3))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    with pytest.raises(openai.BadRequestError) as second:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert second.value.body["message"] == f"Thread {thread.id} already has an active run {run.id}."
    with pytest.raises(openai.BadRequestError) as message:
        client.beta.threads.messages.create(thread.id, role="user", content="more")
    assert message.value.body["message"] == (
        f"Can't add messages to {thread.id} while a run {run.id} is active.")
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)


def test_cancel_during_a_slow_model_call_is_prompt(client, assistant, upstream):
    upstream.enqueue(Reply(text="never", first_token_delay=20))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    deadline = time.monotonic() + 10
    while client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status != "in_progress":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    started = time.monotonic()
    cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelling.status == "cancelling"
    final = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=20)
    elapsed = time.monotonic() - started
    assert final.status == "cancelled" and final.cancelled_at is not None
    assert elapsed < 1.0, f"cancel took {elapsed:.2f}s"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)


def test_an_upstream_429_is_retried(client, assistant, upstream):
    upstream.fail_next(1, status=429)
    upstream.enqueue(Reply(text="after retry"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "completed"
    assert len(upstream.chat_requests()) == 2


def test_a_persistent_500_fails_the_run(client, assistant, upstream, stack):
    upstream.fail_next(1000, status=500)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=100)
    assert run.status == "failed"
    assert run.last_error.code == "server_error"
    assert "500" in run.last_error.message
    assert run.failed_at is not None


def test_an_upstream_400_fails_with_invalid_prompt(client, assistant, upstream):
    upstream.fail_next(1, status=400)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "failed" and run.last_error.code == "invalid_prompt"


def test_hitting_max_completion_tokens_makes_the_run_incomplete(client, assistant, upstream):
    upstream.enqueue(Reply(text="cut short", finish_reason="length"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    max_completion_tokens=256, poll_interval_ms=50)
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert upstream.last_chat_request()["max_completion_tokens"] == 256
    message = client.beta.threads.messages.list(thread.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "max_tokens"


def test_truncation_last_messages_sends_only_the_newest(client, assistant, upstream):
    thread = client.beta.threads.create(messages=[
        {"role": "user", "content": f"message {i}"} for i in range(5)])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50,
        truncation_strategy={"type": "last_messages", "last_messages": 2})
    assert run.status == "completed"
    assert run.truncation_strategy.type == "last_messages"
    sent = upstream.last_chat_request()["messages"]
    assert sent == [{"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "message 3"},
                    {"role": "user", "content": "message 4"}]


def test_auto_truncation_drops_the_middle_to_fit_max_prompt_tokens(client, upstream):
    from workers.tokenization import count_tokens

    bare = client.beta.assistants.create(model="gpt-4o")
    filler = "word " * 100  # about 100 tokens each
    thread = client.beta.threads.create(messages=[
        {"role": "user", "content": f"first {filler}"},
        *({"role": "user", "content": f"middle {i} {filler}"} for i in range(6)),
        {"role": "user", "content": f"last {filler}"},
    ])
    each = count_tokens(f"middle 0 {filler}", "gpt-4o") + 3
    assert 95 < each < 110
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=bare.id, max_prompt_tokens=400, poll_interval_ms=50)
    assert run.status == "completed"
    sent = [m["content"].split(" ")[0:2] for m in upstream.last_chat_request()["messages"]]
    # The newest and the opening message stay; the middle fills newest-first while it fits.
    assert sent == [["first", "word"], ["middle", "5"], ["last", "word"]]


def test_a_prompt_that_cannot_fit_makes_the_run_incomplete(client, upstream):
    bare = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "word " * 600}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=bare.id, max_prompt_tokens=256, poll_interval_ms=50)
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_prompt_tokens"
    assert upstream.chat_requests() == []


def test_create_thread_and_run_poll(client, assistant, upstream):
    upstream.enqueue(Reply(text="hello there"))
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, poll_interval_ms=50,
        thread={"messages": [{"role": "user", "content": "hi"}]})
    assert run.status == "completed" and run.thread_id.startswith("thread_")
    assert client.beta.threads.messages.list(run.thread_id).data[0].content[0].text.value == "hello there"


def test_runs_of_another_project_are_invisible(client, other_client, assistant, upstream):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    other_thread = other_client.beta.threads.create()
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.runs.create(thread_id=other_thread.id, assistant_id=assistant.id)


def test_run_gets_carry_the_poll_interval_header(http, client, assistant, upstream):
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    response = http.get(f"/threads/{thread.id}/runs/{run.id}", headers={"OpenAI-Beta": "assistants=v2"})
    assert int(response.headers["openai-poll-after-ms"]) <= 100


def test_an_unanswered_function_call_expires_the_run(client, assistant, upstream, orm):
    from apps.runs.models import Run

    upstream.enqueue(Reply(tool_calls=[("get_time", "{}")]))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "time?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "requires_action"
    Run.objects.filter(pk=run.id).update(expires_at=int(time.time()) - 1)
    deadline = time.monotonic() + 20
    while (current := client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)).status != "expired":
        assert time.monotonic() < deadline, current.status
        time.sleep(0.2)
    assert current.expires_at is None
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    assert step.status == "expired" and step.expired_at is not None
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id,
            tool_outputs=[{"tool_call_id": current.required_action.submit_tool_outputs.tool_calls[0].id
                           if current.required_action else "call_x", "output": "late"}])


def test_a_worker_killed_mid_run_leaves_no_stuck_run_and_no_duplicate_message(
        client, assistant, upstream, stack):
    import os
    import signal

    upstream.enqueue(Reply(text="partial answer that never finishes", per_chunk_delay=1.0))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    deadline = time.monotonic() + 10
    while not client.beta.threads.messages.list(thread.id, run_id=run.id).data:
        assert time.monotonic() < deadline, "the run never started writing its message"
        time.sleep(0.05)

    worker = stack.children.pop("worker-runs")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    stack.start_worker("runs")

    final = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=200)
    assert final.status in ("completed", "failed")
    produced = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    if final.status == "completed":
        assert len(produced) == 1 and produced[0].status == "completed"
        assert produced[0].content[0].text.value == "You said: hi"
    else:
        assert all(message.status != "in_progress" for message in produced)
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert all(step.status != "in_progress" for step in steps)


def test_models_are_routed_to_other_backends_by_name(client, upstream, routed_upstream):
    routed_upstream.reset()
    routed_upstream.enqueue(Reply(text="from the routed backend"))
    bot = client.beta.assistants.create(model="routed-llama")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=bot.id,
                                                    poll_interval_ms=50)
    assert run.status == "completed"
    assert routed_upstream.last_chat_request()["model"] == "routed-llama"
    headers = {name.lower(): value for name, value in routed_upstream.requests[-1].headers.items()}
    assert headers["authorization"] == "Bearer sk-routed"
    assert upstream.chat_requests() == []


def test_a_mid_stream_disconnect_fails_the_run_and_closes_the_message(client, assistant, upstream):
    upstream.enqueue(Reply(text="one two three four five six", disconnect_after_chunks=3))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "failed" and run.last_error.code == "server_error"
    message = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_failed"
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    assert step.status == "failed" and step.last_error.code == "server_error"


def test_an_upstream_that_never_answers_times_out_and_fails(client, assistant, upstream):
    upstream.set_responder(lambda request: Reply(hang=True))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    started = time.monotonic()
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=100)
    assert run.status == "failed" and run.last_error.code == "server_error"
    assert "timed out" in run.last_error.message
    assert time.monotonic() - started < 20


def test_quiet_streams_carry_keep_alive_comments(http, client, assistant, upstream):
    upstream.enqueue(Reply(text="late", first_token_delay=1.5))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    with http.stream("POST", f"/threads/{thread.id}/runs", json={"assistant_id": assistant.id, "stream": True},
                     headers={"OpenAI-Beta": "assistants=v2"}) as response:
        raw = response.read().decode()
    assert ": keep-alive" in raw
    assert raw.rstrip().endswith("event: done\ndata: [DONE]")


def _poll_until(fetch, done, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not done(current := fetch()):
        assert time.monotonic() < deadline, current
        time.sleep(0.05)
    return current


def test_a_tool_call_cut_off_by_max_completion_tokens_is_never_offered(client, assistant, upstream):
    upstream.enqueue(Reply(text="Checking.", tool_calls=[("get_weather", '{"city": "Pa')],
                           finish_reason="length"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    max_completion_tokens=256, poll_interval_ms=50)
    assert run.status == "incomplete" and run.required_action is None
    assert run.incomplete_details.reason == "max_completion_tokens"
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [(s.type, s.status) for s in steps] == [("message_creation", "completed"),
                                                   ("tool_calls", "failed")]
    assert steps[1].last_error.code == "server_error" and "token limit" in steps[1].last_error.message
    assert run.usage.total_tokens == sum(s.usage.total_tokens for s in steps)
    # The text was whole before the call began (it closed then); only the call was cut.
    message = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert message.status == "completed" and message.content[0].text.value == "Checking."
    assert len(upstream.chat_requests()) == 1


def test_a_hosted_tool_call_cut_off_by_the_models_own_limit_is_not_run(client, upstream):
    """Without a max_completion_tokens budget the cut is the model's output cap: still a
    completion-token limit, so the run ends incomplete the same way, and the code never runs."""
    tutor = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    upstream.enqueue(Reply(tool_calls=[("python", '{"code": "open(\'/mnt/data/x\', \'w\').wri')],
                           finish_reason="length"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Go"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tutor.id,
                                                    poll_interval_ms=50)
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    assert step.type == "tool_calls" and step.status == "failed"
    assert step.step_details.tool_calls[0].code_interpreter.outputs == []
    assert client.beta.threads.messages.list(thread.id, run_id=run.id).data == []
    assert len(upstream.chat_requests()) == 1


def test_a_cut_off_text_answer_without_a_budget_is_incomplete_too(client, assistant, upstream):
    upstream.enqueue(Reply(text="and then", finish_reason="length"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Tell me"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    message = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert message.status == "incomplete" and message.content[0].text.value == "and then"


def test_tool_outputs_after_expires_at_expire_the_run_at_once(client, assistant, upstream, orm):
    from apps.runs.models import Run

    upstream.enqueue(Reply(tool_calls=[("get_time", "{}")]))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "time?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    Run.objects.filter(pk=run.id).update(expires_at=int(time.time()) - 1)
    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "late"}])
    assert refused.value.body["message"] == 'Runs in status "expired" do not accept tool outputs.'
    expired = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert expired.status == "expired" and expired.expires_at is None
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    assert step.status == "expired" and step.expired_at is not None
    assert step.step_details.tool_calls[0].function.output is None
    assert len(upstream.chat_requests()) == 1


def test_reading_a_run_past_expires_at_shows_it_expired(client, assistant, upstream, orm):
    from apps.runs.models import Run

    upstream.enqueue(Reply(tool_calls=[("get_time", "{}")]))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "time?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    Run.objects.filter(pk=run.id).update(expires_at=int(time.time()) - 1)
    seen = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert seen.status == "expired" and seen.required_action is None
    assert [r.status for r in client.beta.threads.runs.list(thread.id)] == ["expired"]
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    assert step.status == "expired"


def test_max_prompt_tokens_counts_the_runs_own_tool_results(client, assistant, upstream):
    upstream.enqueue(Reply(tool_calls=[("get_weather", '{"city": "Oslo"}')]))
    upstream.enqueue(Reply(text="unreachable"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    max_prompt_tokens=300, poll_interval_ms=50)
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, poll_interval_ms=50,
        tool_outputs=[{"tool_call_id": call.id, "output": "rain " * 400}])
    assert done.status == "incomplete" and done.incomplete_details.reason == "max_prompt_tokens"
    assert done.usage.prompt_tokens <= 300
    assert len(upstream.chat_requests()) == 1


def test_thread_messages_make_room_for_the_runs_own_turns(client, assistant, upstream):
    filler = "word " * 100
    thread = client.beta.threads.create(messages=[
        {"role": "user", "content": f"first {filler}"},
        *({"role": "user", "content": f"middle {i} {filler}"} for i in range(2)),
        {"role": "user", "content": f"last {filler}"},
    ])
    upstream.enqueue(Reply(tool_calls=[("get_weather", '{"city": "Oslo"}')]))
    upstream.enqueue(Reply(text="Rainy."))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    max_prompt_tokens=1000, poll_interval_ms=50)
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, poll_interval_ms=50,
        tool_outputs=[{"tool_call_id": call.id, "output": "rain " * 150}])
    assert done.status == "completed"
    assert done.usage.prompt_tokens <= 1000
    first, second = upstream.chat_requests()
    assert len([m for m in first["messages"] if m["role"] == "user"]) == 4
    users = [m["content"].split(" ")[0] for m in second["messages"] if m["role"] == "user"]
    assert users[0] == "first" and users[-1] == "last" and len(users) < 4
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": call.id, "content": "rain " * 150}


def test_an_empty_final_answer_still_makes_a_message(client, assistant, upstream):
    upstream.enqueue(Reply(text=None))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Say nothing"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "completed"
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert [(s.type, s.status) for s in steps] == [("message_creation", "completed")]
    message = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert steps[0].step_details.message_creation.message_id == message.id
    assert message.status == "completed" and message.content == []


@pytest.mark.docker
def test_a_chart_with_no_closing_words_still_reaches_the_message(client, upstream):
    tutor = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])

    def respond(request):
        if not any(m["role"] == "tool" for m in request["messages"]):
            return Reply(tool_calls=[("python", json.dumps(
                {"code": "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"}))])
        return Reply(text=None)

    upstream.set_responder(respond)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Plot it"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tutor.id,
                                                    poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    image = steps[0].step_details.tool_calls[0].code_interpreter.outputs[-1]
    assert image.type == "image"
    message = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert [part.type for part in message.content] == ["image_file"]
    assert message.content[0].image_file.file_id == image.image.file_id


def test_a_failure_with_a_step_open_gives_the_step_an_allowed_error_code(client, assistant, upstream, orm):
    from workers.runs.executor import fail

    upstream.enqueue(Reply(tool_calls=[("get_time", "{}")]))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "time?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    fail(run.id, "invalid_prompt", "The model provider rejected the request.")
    failed = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert failed.status == "failed" and failed.last_error.code == "invalid_prompt"
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    assert step.status == "failed"
    assert step.last_error.code == "server_error"
    assert step.last_error.message == "The model provider rejected the request."


def test_a_run_the_sweeper_expires_mid_answer_stays_expired_and_quiet(client, assistant, upstream, orm):
    from apps.core.redis_client import get_redis
    from apps.runs.events import stream_key
    from apps.runs.models import Run

    upstream.enqueue(Reply(text="one two three four five six seven eight", per_chunk_delay=0.4))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    _poll_until(lambda: client.beta.threads.messages.list(thread.id, run_id=run.id).data, bool, 10)
    Run.objects.filter(pk=run.id).update(expires_at=int(time.time()) - 1)  # the sweeper's turn
    _poll_until(lambda: client.beta.threads.runs.retrieve(run.id, thread_id=thread.id),
                lambda r: r.status == "expired")
    time.sleep(4)  # longer than the rest of the model's answer would have taken

    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "expired"
    message = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_expired"
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    assert step.status == "expired" and step.usage.total_tokens == 0
    names = [fields[b"event"].decode() for _, fields in get_redis().xrange(stream_key(run.id))]
    assert names.count("done") == 1 and names[-1] == "done"
    assert names[-4:] == ["thread.message.incomplete", "thread.run.step.expired", "thread.run.expired", "done"]


def test_cancel_stops_a_run_waiting_for_thread_files_to_be_processed(client, upstream, orm):
    import io

    from apps.vector_stores.models import VectorStoreFile

    uploaded = client.files.create(file=("memo.txt", io.BytesIO(b"The launch is on Friday.")),
                                   purpose="assistants")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "When is the launch?"}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [uploaded.id]}]}})
    store_id = thread.tool_resources.file_search.vector_store_ids[0]
    _poll_until(lambda: client.vector_stores.retrieve(store_id), lambda s: s.status == "completed")
    VectorStoreFile.objects.filter(vector_store_id=store_id).update(status="in_progress")
    searcher = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "file_search"}])
    upstream.enqueue(Reply(tool_calls=[("file_search", '{"queries": ["launch"]}')]))
    try:
        run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=searcher.id)
        _poll_until(lambda: client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data, bool)
        time.sleep(0.5)  # the search is waiting on the file
        started = time.monotonic()
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
        final = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=50)
        assert final.status == "cancelled"
        assert time.monotonic() - started < 3
        step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
        assert step.status == "cancelled"
        assert len(upstream.chat_requests()) == 1
    finally:
        VectorStoreFile.objects.filter(vector_store_id=store_id).update(status="completed")


def test_a_run_ended_before_its_first_token_leaves_nothing_open_or_after_done(client, assistant,
                                                                               upstream, orm):
    from apps.core.redis_client import get_redis
    from apps.runs import state
    from apps.runs.events import stream_key
    from apps.runs.models import RunStep
    from apps.threads.models import Message

    upstream.enqueue(Reply(text="late words arrive", first_token_delay=1.5))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    _poll_until(lambda: client.beta.threads.runs.retrieve(run.id, thread_id=thread.id),
                lambda r: r.status == "in_progress")
    state.expire(run.id)  # what the sweeper does, while the worker still waits on the model
    time.sleep(3)
    assert not RunStep.objects.filter(run_id=run.id, status="in_progress").exists()
    assert not Message.objects.filter(run_id=run.id, status="in_progress").exists()
    names = [fields[b"event"].decode() for _, fields in get_redis().xrange(stream_key(run.id))]
    assert names[-2:] == ["thread.run.expired", "done"] and names.count("done") == 1


def test_streaming_events_are_refused_once_a_run_was_told_to_stop(client, assistant, upstream, orm):
    """The race the sweeper can win by microseconds, made deterministic: after the stop flag
    (set before a run's closing events and `done`), a worker's delta cannot be appended, and
    rows it created meanwhile are closed without a word on the finished stream."""
    from apps.core.redis_client import get_redis
    from apps.runs import events, state
    from apps.runs.models import RunStep

    upstream.enqueue(Reply(text="done quickly"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "completed"  # ended: its stop flag is set
    before = get_redis().xlen(events.stream_key(run.id))
    assert not events.publish_unless_stopped(run.id, [("thread.message.delta", {"late": True})], attempt=1)
    assert get_redis().xlen(events.stream_key(run.id)) == before

    late = RunStep.objects.create(project_id=RunStep.objects.filter(run_id=run.id).first().project_id,
                                  run_id=run.id, thread_id=thread.id, assistant_id=assistant.id,
                                  type="tool_calls", step_details={"type": "tool_calls", "tool_calls": []})
    state.close_leftovers(run.id)
    late.refresh_from_db()
    assert late.status == "cancelled" and late.cancelled_at is not None
    assert get_redis().xlen(events.stream_key(run.id)) == before
