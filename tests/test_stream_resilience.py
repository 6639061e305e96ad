"""SSE streams survive what real deployments do to them: long quiet stretches (a slow first
token, upstream retries, a long code execution), Redis connections killed mid-stream, Redis
outages, more open streams than database connections, lost `done` events.

These run against a second web process and workers (tests/support/side_stack.py) whose
keep-alive interval (6 s) is longer than redis-py's default socket timeout (5 s), and whose
upstream timeout allows a 10 s first token, through the official SDK's streaming helpers."""

from __future__ import annotations

import json
import threading
import time

import openai
import pytest
import redis

from tests.fake_upstream import Reply
from tests.support.side_stack import RecordingTransport, start_side_stack, stop_side_stack

KEEPALIVE_SECONDS = 6.0
RELAY_DB = 1


@pytest.fixture(scope="module")
def side_and_key(stack):
    side, key = start_side_stack(stack, "resilience", {
        "SSE_KEEPALIVE_SECONDS": str(KEEPALIVE_SECONDS),
        "LLM_TIMEOUT": "30",
        "LLM_RETRY_BUDGET_SECONDS": "30",
        "SANDBOX_EXEC_TIMEOUT": "60",
    }, queues=("runs", "sandbox"), redis_db=RELAY_DB)
    yield side, key
    stop_side_stack(side)


@pytest.fixture
def side(side_and_key):
    return side_and_key[0]


@pytest.fixture
def upstream(fake_upstream):
    fake_upstream.reset()
    yield fake_upstream
    fake_upstream.reset()


@pytest.fixture
def transport():
    return RecordingTransport()


@pytest.fixture
def sdk(side_and_key, transport):
    side, key = side_and_key
    client = openai.OpenAI(base_url=f"http://{side.host}:{side.port}/v1", api_key=key,
                           max_retries=0, timeout=120,
                           http_client=openai.DefaultHttpxClient(transport=transport))
    yield client
    client.close()


@pytest.fixture
def side_redis(side):
    store = redis.Redis.from_url(side.env["REDIS_URL"])
    yield store
    store.close()


class Timeline(openai.AssistantEventHandler):
    """Every event the SDK hands over, with the time it arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[float, str, object]] = []

    def on_event(self, event) -> None:
        self.seen.append((time.monotonic(), event.event, event.data))

    @property
    def names(self) -> list[str]:
        return [name for _, name, _ in self.seen]

    def at(self, name: str, predicate=lambda data: True) -> float:
        return next(at for at, seen, data in self.seen if seen == name and predicate(data))


def _stream_to_end(sdk, thread_id: str, assistant_id: str) -> tuple[Timeline, openai.AssistantEventHandler]:
    timeline = Timeline()
    with sdk.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant_id,
                                      event_handler=timeline) as stream:
        stream.until_done()
    return timeline, stream


def _last_events(transport: RecordingTransport, count: int = 2) -> list[str]:
    frames = [frame for frame in transport.streams[-1].text.split("\n\n")
              if frame.startswith("event: ")]
    return [frame.split("\n", 1)[0].removeprefix("event: ") for frame in frames[-count:]]


def _ends_with_done(transport: RecordingTransport) -> bool:
    return transport.streams[-1].text.rstrip().endswith("event: done\ndata: [DONE]")


def test_a_run_whose_upstream_retries_for_8_seconds_streams_to_done(sdk, transport, upstream):
    upstream.fail_next(4, status=500, retry_after=2)
    upstream.enqueue(Reply(text="Back at last."))
    assistant = sdk.beta.assistants.create(model="gpt-4o")
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    started = time.monotonic()
    timeline, stream = _stream_to_end(sdk, thread.id, assistant.id)
    assert time.monotonic() - started >= 7.5  # the quiet really happened
    assert stream.get_final_run().status == "completed"
    assert stream.get_final_messages()[0].content[0].text.value == "Back at last."
    assert len(upstream.chat_requests()) == 5
    assert transport.streams[-1].keep_alives_between(started, timeline.at("thread.message.created")) >= 1
    assert _ends_with_done(transport)


def test_a_first_token_after_10_seconds_streams_to_done(sdk, transport, upstream):
    upstream.enqueue(Reply(text="Thought hard.", first_token_delay=10))
    assistant = sdk.beta.assistants.create(model="gpt-4o")
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "think"}])
    started = time.monotonic()
    timeline, stream = _stream_to_end(sdk, thread.id, assistant.id)
    assert timeline.at("thread.message.created") - started >= 9.5
    assert stream.get_final_run().status == "completed"
    assert stream.get_final_messages()[0].content[0].text.value == "Thought hard."
    assert _ends_with_done(transport)


def test_a_20_second_code_execution_streams_to_done_with_keep_alives_meanwhile(sdk, transport, upstream):
    def respond(request):
        results = [m for m in request["messages"] if m["role"] == "tool"]
        if not results:
            code = "import time\ntime.sleep(20)\nprint('slept')"
            return Reply(tool_calls=[("python", json.dumps({"code": code}))])
        return Reply(text=f"It said {results[-1]['content'].strip()}.")

    upstream.set_responder(respond)
    tutor = sdk.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "sleep"}])
    timeline, stream = _stream_to_end(sdk, thread.id, tutor.id)
    assert stream.get_final_run().status == "completed", stream.get_final_run().last_error
    assert stream.get_final_messages()[0].content[0].text.value == "It said slept."

    def is_tool_step(step) -> bool:
        return getattr(step, "type", None) == "tool_calls"

    executing_from = timeline.at("thread.run.step.in_progress", is_tool_step)
    executed_at = timeline.at("thread.run.step.completed", is_tool_step)
    assert executed_at - executing_from >= 19
    # The quiet was bridged with comments, every interval: 20 s / 6 s.
    assert transport.streams[-1].keep_alives_between(executing_from, executed_at) >= 3
    assert _ends_with_done(transport)


def _relay_connections(store: redis.Redis) -> list[dict]:
    """The side stack's relays, blocked in XREAD on their Redis database."""
    return [client for client in store.client_list()
            if client.get("cmd") == "xread" and str(client.get("db")) == str(RELAY_DB)]


def _kill_relays(store: redis.Redis) -> int:
    killed = 0
    for client in _relay_connections(store):
        killed += bool(store.client_kill_filter(_id=client["id"]))
    return killed


def test_a_relay_whose_redis_connection_is_killed_resumes_losing_and_repeating_nothing(
        sdk, transport, upstream, side_redis):
    words = " ".join(f"w{i}" for i in range(24))
    upstream.enqueue(Reply(text=words, per_chunk_delay=0.25))
    assistant = sdk.beta.assistants.create(model="gpt-4o")
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "count"}])
    timeline = Timeline()
    kills = 0
    with sdk.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id,
                                      event_handler=timeline) as stream:
        for event in stream:
            deltas = timeline.names.count("thread.message.delta")
            if event.event == "thread.message.delta" and deltas in (3, 9, 15):
                time.sleep(0.1)  # the relay is back in XREAD, waiting for the next chunk
                kills += _kill_relays(side_redis)
        run = stream.get_final_run()
    assert kills >= 3
    assert run.status == "completed"
    assert stream.get_final_messages()[0].content[0].text.value == words
    # Exactly the stream's entries, in order, each once.
    entries = side_redis.xrange(f"run:{run.id}:events")
    published = [fields[b"event"].decode() for _, fields in entries]
    assert published[-1] == "done"
    assert timeline.names == published[:-1]
    assert _ends_with_done(transport)


def test_a_lasting_redis_outage_ends_the_stream_with_error_then_done(sdk, transport, upstream,
                                                                    side_redis):
    upstream.enqueue(Reply(text="too late", first_token_delay=25))
    assistant = sdk.beta.assistants.create(model="gpt-4o")
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    outage = threading.Event()

    def keep_killing() -> None:
        while not outage.is_set():
            _kill_relays(side_redis)
            time.sleep(0.01)

    killer = threading.Thread(target=keep_killing, daemon=True)
    timeline = Timeline()
    started = time.monotonic()
    try:
        with pytest.raises(openai.APIError) as raised, sdk.beta.threads.runs.stream(  # noqa: PT012
                thread_id=thread.id, assistant_id=assistant.id, event_handler=timeline) as stream:
            for event in stream:
                if event.event == "thread.run.in_progress" and not killer.is_alive():
                    killer.start()
    finally:
        outage.set()
    ended_after = time.monotonic() - started
    assert "event stream is unavailable" in raised.value.message
    assert 9 <= ended_after <= 20
    assert _last_events(transport) == ["error", "done"]
