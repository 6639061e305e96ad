"""A hosted tool is one object: a toy one, defined in this module only, is registered with the
HOSTED_TOOLS_EXTRA setting of a stack of its own and runs end to end through the official SDK,
the real web and run worker, against the fake upstream. The worker imports this module to load
the tool, so the module keeps its top-level imports light."""

from __future__ import annotations

import json

import pytest

from apps.runs.models import Run, RunStep
from workers.runs.hosted import CallStream, HostedResult, HostedTool
from workers.runs.partial_json import StreamedStringField, string_field

INSTRUCTIONS = "Use reverse_text to reverse any text the user asks about."


class _TextStream(CallStream):
    """The `text` argument as it streams, shown as the step's input."""

    def __init__(self) -> None:
        self._field = StreamedStringField("text")

    def feed(self, fragment: str) -> dict | None:
        added = self._field.feed(fragment)
        return {"reverse": {"input": added}} if added else None

    def sync(self, record: dict) -> None:
        record["reverse"]["input"] = self._field.value


class ReverseTool(HostedTool):
    kind = "reverse"
    function_name = "reverse_text"
    description = "Reverse a text, character by character."
    parameters = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

    def instructions(self, run: Run) -> str:
        return INSTRUCTIONS

    def preflight(self, run: Run) -> str | None:
        if (run.metadata or {}).get("reverse") == "off":
            return "The reverse tool is switched off for this run."
        return None

    def initial_record(self, call_id: str) -> dict:
        return {"id": call_id, "type": "reverse", "reverse": {"input": "", "output": None}}

    def call_stream(self) -> CallStream:
        return _TextStream()

    def execute(self, run: Run, call_id: str, arguments: str) -> HostedResult:
        text = string_field(arguments, "text")
        return HostedResult(model_output=text[::-1],
                            record={"type": "reverse", "reverse": {"input": text, "output": text[::-1]}},
                            extras={"reversed": text[::-1]})

    def output_delta(self, record: dict) -> dict | None:
        return {"reverse": {"output": record["reverse"]["output"]}}

    def finalize_text(self, run: Run, text: str) -> tuple[list[dict], list[dict]]:
        reversed_texts = [call["reversed"] for io in RunStep.objects.filter(run_id=run.pk, type="tool_calls")
                          .values_list("tool_io", flat=True) for call in io.values() if "reversed" in call]
        if not reversed_texts:
            return [], []
        return [], [{"type": "text", "text": {"value": f"(reversed {len(reversed_texts)} text)",
                                              "annotations": []}}]


@pytest.fixture(scope="module")
def toy_client(stack):
    from tests.conftest import make_client
    from tests.support.side_stack import start_side_stack

    side, key = start_side_stack(stack, "hosted_tools",
                                 {"HOSTED_TOOLS_EXTRA": f"reverse={__name__}.ReverseTool"},
                                 queues=("runs",))
    client = make_client(f"http://{side.host}:{side.port}/v1", key)
    yield client
    client.close()
    side.stop()


@pytest.fixture
def upstream(fake_upstream):
    fake_upstream.reset()
    yield fake_upstream
    fake_upstream.reset()


def _deltas(events: list, kind: str) -> list[dict]:
    return [call for event in events if event.event == "thread.run.step.delta"
            for call in event.data.to_dict(warnings=False)["delta"]["step_details"]["tool_calls"]
            if call.get("type") == kind]


def test_a_toy_hosted_tool_runs_end_to_end(toy_client, upstream):
    from tests.fake_upstream import Reply

    assistant = toy_client.beta.assistants.create(model="gpt-4o", instructions="Be brief.",
                                                  tools=[{"type": "reverse"}])
    thread = toy_client.beta.threads.create(messages=[{"role": "user", "content": "Reverse hello world"}])
    upstream.enqueue(Reply(tool_calls=[("reverse_text", json.dumps({"text": "hello world"}))]),
                     Reply(text="It reads dlrow olleh."))

    events = list(toy_client.beta.threads.runs.create(
        thread.id, assistant_id=assistant.id, tool_choice={"type": "reverse"}, stream=True))

    first, second = upstream.chat_requests()
    assert {"type": "function", "function": {
        "name": "reverse_text", "description": ReverseTool.description,
        "parameters": ReverseTool.parameters}} in first["tools"]
    assert first["tool_choice"] == {"type": "function", "function": {"name": "reverse_text"}}
    assert first["messages"][0] == {"role": "system", "content": f"Be brief.\n\n{INSTRUCTIONS}"}
    assert second["messages"][-1]["role"] == "tool" and second["messages"][-1]["content"] == "dlrow olleh"

    names = [event.event for event in events]
    assert names[-1] == "thread.run.completed"
    created = [event.data.to_dict(warnings=False) for event in events if event.event == "thread.run.step.created"]
    assert created[0]["type"] == "tool_calls"
    # The call appears with its initial record, its input streams in, its output follows.
    deltas = _deltas(events, "reverse")
    assert deltas[0]["reverse"] == {"input": "", "output": None}
    assert "".join(d["reverse"].get("input") or "" for d in deltas[1:]) == "hello world"
    assert deltas[-1]["reverse"] == {"output": "dlrow olleh"}

    steps = toy_client.beta.threads.runs.steps.list(events[-1].data.id, thread_id=thread.id, order="asc")
    tool_step, message_step = (step.to_dict(warnings=False) for step in steps.data)
    call = tool_step["step_details"]["tool_calls"][0]
    assert (call["type"], call["reverse"]) == ("reverse", {"input": "hello world", "output": "dlrow olleh"})
    assert tool_step["status"] == message_step["status"] == "completed"

    # The text finaliser's extra part is in the message and in the stream.
    message = toy_client.beta.threads.messages.list(thread.id, order="desc").data[0]
    assert [part.text.value for part in message.content] == ["It reads dlrow olleh.", "(reversed 1 text)"]
    parts = [part for event in events if event.event == "thread.message.delta"
             for part in event.data.to_dict(warnings=False)["delta"]["content"]]
    assert {"index": 1, "type": "text", "text": {"value": "(reversed 1 text)", "annotations": []}} in parts


def test_a_toy_hosted_tools_preflight_fails_the_run(toy_client, upstream):
    assistant = toy_client.beta.assistants.create(model="gpt-4o", tools=[{"type": "reverse"}])
    thread = toy_client.beta.threads.create(messages=[{"role": "user", "content": "Reverse this"}])

    run = toy_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, metadata={"reverse": "off"}, poll_interval_ms=100)

    assert run.status == "failed"
    assert run.last_error.to_dict(warnings=False) == {"code": "invalid_prompt",
                                        "message": "The reverse tool is switched off for this run."}
    assert upstream.chat_requests() == []


def test_an_unconfigured_kind_is_refused_by_the_api(client):
    import openai

    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.assistants.create(model="gpt-4o", tools=[{"type": "reverse"}])
    assert refused.value.body["param"] == "tools[0].type"
