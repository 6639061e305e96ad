"""Streamed answers carry each annotation in the same `thread.message.delta` as the text it
annotates, with indexes relative to the whole message: stream consumers such as Semantic
Kernel read annotations only from a delta that carries text."""

from __future__ import annotations

import io
import json

import pytest
from openai import AssistantEventHandler

from tests.fake_upstream import Reply
from tests.support.sse import stream_raw


def _text_deltas(events) -> list[dict]:
    return [part["text"] for name, data in events if name == "thread.message.delta"
            for part in data["delta"]["content"] if part["type"] == "text"]


def _completed_text(events) -> dict:
    completed = [data for name, data in events if name == "thread.message.completed"]
    return completed[-1]["content"][0]["text"]


def _assert_each_annotation_rides_with_its_text(deltas: list[dict], final: dict, marker: str) -> dict:
    carrying = [d for d in deltas if marker in d.get("value", "")]
    assert len(carrying) == 1, deltas  # the marker is never cut across deltas
    delta = carrying[0]
    assert [a["text"] for a in delta["annotations"]] == [marker]
    annotation = delta["annotations"][0]
    whole = "".join(d.get("value", "") for d in deltas)
    assert whole == final["value"]
    assert whole[annotation["start_index"]:annotation["end_index"]] == marker
    # No delta carries annotations without text, and the final message has the same ones.
    assert all("value" in d for d in deltas if d.get("annotations"))
    assert [{k: v for k, v in a.items() if k != "index"} for d in deltas
            for a in d.get("annotations") or []] == final["annotations"]
    return annotation


def test_a_streamed_file_search_answer_carries_its_citation_with_the_marker(client, http, upstream):
    kb = client.files.create(file=("kb.txt", io.BytesIO(b"The tide is driven by the moon.")),
                             purpose="assistants")
    store = client.vector_stores.create(name="kb")
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[kb.id], poll_interval_ms=50)
    assert batch.file_counts.completed == 1
    assistant = client.beta.assistants.create(
        model="gpt-4o", tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}})

    def respond(request):
        results = [m for m in request["messages"] if m["role"] == "tool"]
        if not results:
            return Reply(tool_calls=[("file_search", '{"queries": ["tide"]}')])
        marker = results[-1]["content"].split("\n", 1)[0]
        # Three characters a chunk: the marker arrives cut into pieces.
        return Reply(text=f"The moon drives the tide{marker}, twice a day.", chunk_chars=3)

    upstream.set_responder(respond)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What drives the tide?"}])
    status, events = stream_raw(http, f"/threads/{thread.id}/runs",
                                {"assistant_id": assistant.id, "stream": True})
    assert status == 200
    final = _completed_text(events)
    marker = "【0:0†kb.txt】"
    assert marker in final["value"]
    annotation = _assert_each_annotation_rides_with_its_text(_text_deltas(events), final, marker)
    assert annotation["type"] == "file_citation" and annotation["file_citation"] == {"file_id": kb.id}
    assert annotation["index"] == 0

    # The SDK's own accumulation ends with the same annotation as the stored message.
    upstream.set_responder(respond)
    seen: list = []

    class Handler(AssistantEventHandler):
        def on_text_delta(self, delta, snapshot) -> None:
            if delta.annotations:
                seen.append((delta.value, [a.type for a in delta.annotations]))

    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Again?"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id,
                                         event_handler=Handler()) as stream:
        stream.until_done()
        text = stream.get_final_messages()[0].content[0].text
    assert seen == [(marker, ["file_citation"])]
    assert text.value[text.annotations[0].start_index:text.annotations[0].end_index] == marker


def test_text_that_only_looks_like_a_marker_streams_without_waiting(client, http, upstream):
    """A lone 【 or `sandbox` that never becomes a marker goes out with the text after it."""
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "file_search"}])
    upstream.enqueue(Reply(text="Brackets 【like these】 and the word sandbox stay plain.", chunk_chars=2))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    status, events = stream_raw(http, f"/threads/{thread.id}/runs",
                                {"assistant_id": assistant.id, "stream": True})
    assert status == 200
    deltas = _text_deltas(events)
    assert "".join(d.get("value", "") for d in deltas) == _completed_text(events)["value"]
    assert not any(d.get("annotations") for d in deltas)
    assert max(len(d["value"]) for d in deltas) <= 12  # held back briefly, never to the end


@pytest.mark.docker
def test_a_streamed_sandbox_link_carries_its_file_path_annotation(client, http, upstream):
    tutor = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    code = "open('/mnt/data/out.csv', 'w').write('a,b\\n1,2\\n')\nprint('written')"

    def respond(request):
        if not [m for m in request["messages"] if m["role"] == "tool"]:
            return Reply(tool_calls=[("python", json.dumps({"code": code}))])
        return Reply(text="Here it is: [out.csv](sandbox:/mnt/data/out.csv). Done.", chunk_chars=4)

    upstream.set_responder(respond)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Write a csv"}])
    status, events = stream_raw(http, f"/threads/{thread.id}/runs",
                                {"assistant_id": tutor.id, "stream": True})
    assert status == 200
    final = _completed_text(events)
    link = "sandbox:/mnt/data/out.csv"
    annotation = _assert_each_annotation_rides_with_its_text(_text_deltas(events), final, link)
    assert annotation["type"] == "file_path"
    assert client.files.content(annotation["file_path"]["file_id"]).read() == b"a,b\n1,2\n"
