"""Streaming runs: the event order of the official transcripts, the SDK's stream helpers and
event handlers, and late subscribers."""

from __future__ import annotations

import pytest
from openai import AssistantEventHandler

from apps.core.openapi import response_errors
from tests.fake_upstream import Reply
from tests.support.sse import collapse, stream_raw, transcript_events
from tests.test_runs import TIME_TOOL, WEATHER_TOOL


@pytest.fixture
def assistant(client):
    return client.beta.assistants.create(model="gpt-4o", tools=[WEATHER_TOOL, TIME_TOOL])


def test_a_plain_streamed_run_follows_the_transcript(http, client, assistant, upstream):
    upstream.enqueue(Reply(text="Hello there, how can I help?"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    status, events = stream_raw(http, f"/threads/{thread.id}/runs",
                                {"assistant_id": assistant.id, "stream": True})
    assert status == 200
    names = [name for name, _ in events]
    assert collapse(names) == collapse(transcript_events("createRun__streaming.txt"))
    assert names.count("thread.message.delta") > 1

    deltas = [data for name, data in events if name == "thread.message.delta"]
    assert "".join(d["delta"]["content"][0]["text"]["value"] for d in deltas) == "Hello there, how can I help?"
    assert all(d["delta"]["content"][0]["index"] == 0 for d in deltas)
    completed = dict(events)["thread.run.completed"]
    assert completed["usage"]["total_tokens"] > 0 and completed["expires_at"] is None
    created = dict(events)["thread.run.step.created"]
    assert created["step_details"]["message_creation"]["message_id"] == dict(events)["thread.message.created"]["id"]
    for name, data in events:
        schema = {"thread.run.step.delta": "RunStepDeltaObject",
                  "thread.message.delta": "MessageDeltaObject"}.get(name)
        if name.startswith("thread.run.step."):
            schema = schema or "RunStepObject"
        elif name.startswith("thread.run."):
            schema = "RunObject"
        elif name.startswith("thread.message."):
            schema = schema or "MessageObject"
        if schema:
            assert response_errors(schema, data) == [], (name, data)


def test_parallel_function_calls_stream_then_stop_at_requires_action(http, client, assistant, upstream):
    upstream.enqueue(Reply(tool_calls=[("get_weather", '{"city": "Rome"}'), ("get_time", "{}")]))
    status, events = stream_raw(http, "/threads/runs", {
        "assistant_id": assistant.id, "stream": True,
        "thread": {"messages": [{"role": "user", "content": "weather and time?"}]}})
    assert status == 200
    names = [name for name, _ in events]
    assert collapse(names) == collapse(transcript_events("createThreadAndRun__streaming-with-functions.txt"))
    step_deltas = [data["delta"]["step_details"]["tool_calls"][0] for name, data in events
                   if name == "thread.run.step.delta"]
    firsts = [d for d in step_deltas if "id" in d]
    assert [(d["index"], d["function"]["name"], d["function"]["arguments"], d["function"]["output"])
            for d in firsts] == [(0, "get_weather", "", None), (1, "get_time", "", None)]
    rebuilt = {0: "", 1: ""}
    for delta in step_deltas:
        rebuilt[delta["index"]] += delta["function"].get("arguments", "")
    assert rebuilt == {0: '{"city": "Rome"}', 1: "{}"}
    required = dict(events)["thread.run.requires_action"]
    assert required["usage"] is not None
    assert len(required["required_action"]["submit_tool_outputs"]["tool_calls"]) == 2
    assert names[-1] == "done"


def test_the_submit_tool_outputs_stream_follows_the_transcript(http, client, assistant, upstream):
    upstream.enqueue(Reply(tool_calls=[("get_time", "{}")]))
    upstream.enqueue(Reply(text="It is noon."))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "time?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    status, events = stream_raw(http, f"/threads/{thread.id}/runs/{run.id}/submit_tool_outputs", {
        "tool_outputs": [{"tool_call_id": call.id, "output": "12:00"}], "stream": True})
    assert status == 200
    names = collapse([name for name, _ in events])
    assert names == [
        "thread.run.step.completed", "thread.run.queued", "thread.run.in_progress",
        "thread.run.step.created", "thread.run.step.in_progress",
        "thread.message.created", "thread.message.in_progress", "thread.message.delta",
        "thread.message.completed", "thread.run.step.completed", "thread.run.completed", "done",
    ]
    first = events[0][1]
    assert first["step_details"]["tool_calls"][0]["function"]["output"] == "12:00"


class RecordingHandler(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.text = ""
        self.tool_calls: list = []
        self.events: list[str] = []

    def on_event(self, event) -> None:
        self.events.append(event.event)

    def on_text_delta(self, delta, snapshot) -> None:
        self.text += delta.value

    def on_tool_call_done(self, tool_call) -> None:
        self.tool_calls.append(tool_call)


def test_the_sdk_stream_helpers_and_event_handler_work_unmodified(client, assistant, upstream):
    upstream.enqueue(Reply(tool_calls=[("get_weather", '{"city": "Lima"}'), ("get_time", "{}")]))
    upstream.enqueue(Reply(text="Warm, and it is late."))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "?"}])
    first = RecordingHandler()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id,
                                         event_handler=first) as stream:
        stream.until_done()
    run = stream.get_final_run()
    assert run.status == "requires_action"
    assert [c.function.name for c in first.tool_calls] == ["get_weather", "get_time"]
    assert first.tool_calls[0].function.arguments == '{"city": "Lima"}'

    second = RecordingHandler()
    outputs = [{"tool_call_id": c.id, "output": "ok"} for c in run.required_action.submit_tool_outputs.tool_calls]
    with client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=thread.id, run_id=run.id, tool_outputs=outputs, event_handler=second) as stream:
        stream.until_done()
    assert second.text == "Warm, and it is late."
    final_messages = stream.get_final_messages()
    assert final_messages[0].content[0].text.value == "Warm, and it is late."
    assert stream.get_final_run().status == "completed"


def test_raw_sdk_streams_yield_typed_events(client, assistant, upstream):
    upstream.enqueue(Reply(text="typed"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "?"}])
    events = list(client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id,
                                                  stream=True))
    assert events[0].event == "thread.run.created"
    assert events[-1].event == "thread.run.completed"
    assert events[-1].data.status == "completed"


def test_a_late_subscriber_gets_every_event_from_the_start(client, assistant, upstream):
    upstream.enqueue(Reply(text="one two three four", per_chunk_delay=0.05))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "?"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        import time

        time.sleep(0.5)  # the run is well under way (or done) before we read anything
        names = [event.event for event in stream]
    assert names[0] == "thread.run.created"
    assert names[-1] == "thread.run.completed"
    assert stream.current_message_snapshot.content[0].text.value == "one two three four"


def test_a_run_that_fails_mid_answer_closes_message_then_step_then_run(http, client, assistant, upstream):
    upstream.enqueue(Reply(text="one two three four five six", disconnect_after_chunks=3))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    status, events = stream_raw(http, f"/threads/{thread.id}/runs",
                                {"assistant_id": assistant.id, "stream": True})
    assert status == 200
    names = collapse([name for name, _ in events])
    assert names[-5:] == ["thread.message.delta", "thread.message.incomplete", "thread.run.step.failed",
                          "thread.run.failed", "done"]
    step = dict(events)["thread.run.step.failed"]
    assert step["last_error"]["code"] == "server_error" and step["failed_at"] is not None
    closed = dict(events)["thread.message.incomplete"]
    assert closed["incomplete_details"] == {"reason": "run_failed"}
    streamed = "".join(data["delta"]["content"][0]["text"]["value"] for name, data in events
                       if name == "thread.message.delta")
    assert closed["content"][0]["text"]["value"] == streamed  # what the client saw, kept


def test_a_cancelled_stream_closes_message_then_step_then_run(client, assistant, upstream):
    upstream.enqueue(Reply(text="one two three four five six seven eight", per_chunk_delay=0.3))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    names: list[str] = []
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        for event in stream:
            names.append(event.event)
            if names.count("thread.message.delta") == 2 and event.event == "thread.message.delta":
                client.beta.threads.runs.cancel(stream.current_run.id, thread_id=thread.id)
    assert names[-3:] == ["thread.message.incomplete", "thread.run.step.cancelled", "thread.run.cancelled"]
    kept = stream.get_final_messages()[0]
    assert kept.status == "incomplete" and kept.content[0].text.value.startswith("one two")
    assert "thread.run.cancelling" in names


def test_a_streaming_message_shows_its_text_so_far_and_a_cancel_keeps_all_of_it(client, assistant, upstream):
    """While a slow answer streams, the message's row holds its text within about a second (the
    worker saves all its streaming messages together, workers/runs/text_flush.py); a cancel
    keeps every word that was streamed: no older save lands after the last one."""
    import time

    words = [f"w{i}" for i in range(30)]
    upstream.enqueue(Reply(text=" ".join(words), per_chunk_delay=0.15))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    seen = ""
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                seen += event.data.delta.content[0].text.value
                if len(seen.split()) == 10:
                    before = seen
                    time.sleep(2.5)  # the stream's later events wait in Redis meanwhile
                    message = client.beta.threads.messages.retrieve(event.data.id, thread_id=thread.id)
                    assert message.status == "in_progress"
                    assert message.content[0].text.value.startswith(before)
                if len(seen.split()) == 15:
                    client.beta.threads.runs.cancel(stream.current_run.id, thread_id=thread.id)
    kept = client.beta.threads.messages.list(thread_id=thread.id, order="desc").data[0]
    assert kept.status == "incomplete"
    # A word the worker read as the cancel landed is kept though its delta was not sent.
    assert kept.content[0].text.value.startswith(seen)
    assert len(kept.content[0].text.value.split()) <= len(seen.split()) + 1


def test_an_empty_streamed_answer_still_has_a_final_message(client, assistant, upstream):
    upstream.enqueue(Reply(text=None))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Say nothing"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        names = [event.event for event in stream]
    assert names[-4:] == ["thread.message.in_progress", "thread.message.completed",
                          "thread.run.step.completed", "thread.run.completed"]
    final = stream.get_final_messages()
    assert len(final) == 1 and final[0].content == [] and final[0].status == "completed"


def test_text_before_a_tool_call_closes_its_message_before_the_tool_step(client, assistant, upstream):
    """A reply that says something and then calls a function: the message and its step are
    done before the tool_calls step starts, and the SDK's handler sees each tool call finish
    once."""
    upstream.enqueue(Reply(text="Let me look that up.",
                           tool_calls=[("get_weather", '{"city": "Oslo"}')]))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])
    seen: list[str] = []
    done_calls: list[str] = []

    class Handler(AssistantEventHandler):
        def on_event(self, event) -> None:
            if event.event in ("thread.message.completed", "thread.run.step.created",
                               "thread.run.step.completed"):
                kind = getattr(event.data, "type", "message")
                seen.append(f"{event.event}:{kind}")

        def on_tool_call_done(self, tool_call) -> None:
            done_calls.append(tool_call.id)

    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id,
                                         event_handler=Handler()) as stream:
        stream.until_done()
    assert seen == [
        "thread.run.step.created:message_creation",
        "thread.message.completed:message",
        "thread.run.step.completed:message_creation",
        "thread.run.step.created:tool_calls",
    ]
    assert len(done_calls) == len(set(done_calls))
    run = client.beta.threads.runs.list(thread.id).data[0]
    assert run.status == "requires_action"
    message = client.beta.threads.messages.list(thread.id).data[0]
    assert message.status == "completed" and message.content[0].text.value == "Let me look that up."
