"""What clients built on the SDK's own models send back: `model_dump()` writes every unset field
as null, so a read-modify-write of our objects posts `{"file_search": null}` and the like. A
null for an optional field the contract does not declare nullable means the field is absent.
Errors speak the API's words, never Python's (`None`, `True`, `{'required': ...}`)."""

from __future__ import annotations

import io
import re

import pytest
from openai.types.beta import assistant as assistant_types
from openai.types.beta import thread as thread_types
from openai.types.beta.assistant_tool_choice import AssistantToolChoice
from openai.types.beta.code_interpreter_tool import CodeInterpreterTool
from openai.types.beta.file_search_tool import FileSearch, FileSearchRankingOptions, FileSearchTool
from openai.types.beta.function_tool import FunctionTool
from openai.types.beta.threads.image_file import ImageFile
from openai.types.beta.threads.image_file_content_block import ImageFileContentBlock
from openai.types.beta.threads.message import Attachment
from openai.types.beta.threads.run import TruncationStrategy
from openai.types.shared.function_definition import FunctionDefinition
from openai.types.shared.response_format_json_schema import JSONSchema, ResponseFormatJSONSchema

from tests.fake_upstream import Reply

PYTHON_ISMS = re.compile(r"\bNone\b|\bTrue\b|\bFalse\b|\{'|\['|is valid under each of|is not valid under")


@pytest.fixture
def data_file(client):
    return client.files.create(file=("data.csv", io.BytesIO(b"a,b\n1,2\n")), purpose="assistants")


@pytest.fixture
def store(client):
    return client.vector_stores.create(name="kb")


def test_a_threads_tool_resources_round_trip_through_model_dump(client, data_file, store):
    """AutoGen's on_upload_for_code_interpreter: read the thread, post back the SDK's
    ToolResources(...).model_dump(), with `file_search: null`."""
    thread = client.beta.threads.create()
    resources = client.beta.threads.retrieve(thread.id).tool_resources or thread_types.ToolResources()
    resources.code_interpreter = thread_types.ToolResourcesCodeInterpreter(file_ids=[data_file.id])
    body = resources.model_dump()
    assert body["file_search"] is None
    updated = client.beta.threads.update(thread.id, tool_resources=body)
    assert updated.tool_resources.code_interpreter.file_ids == [data_file.id]

    # The thread as read, posted back whole: every field keeps its value.
    again = client.beta.threads.update(thread.id, tool_resources=updated.tool_resources.model_dump())
    assert again.tool_resources.code_interpreter.file_ids == [data_file.id]

    searching = thread_types.ToolResources(
        file_search=thread_types.ToolResourcesFileSearch(vector_store_ids=[store.id])).model_dump()
    assert searching["code_interpreter"] is None
    created = client.beta.threads.create(tool_resources=searching)
    assert created.tool_resources.file_search.vector_store_ids == [store.id]
    modified = client.beta.threads.update(created.id, tool_resources=searching)
    assert modified.tool_resources.file_search.vector_store_ids == [store.id]
    assert client.beta.threads.retrieve(created.id).tool_resources.code_interpreter is None


def test_an_assistants_tool_resources_round_trip_through_model_dump(client, data_file, store):
    resources = assistant_types.ToolResources(
        code_interpreter=assistant_types.ToolResourcesCodeInterpreter(file_ids=[data_file.id]))
    created = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}],
                                            tool_resources=resources.model_dump())
    assert created.tool_resources.code_interpreter.file_ids == [data_file.id]

    read = client.beta.assistants.retrieve(created.id)
    read.tool_resources.file_search = assistant_types.ToolResourcesFileSearch(vector_store_ids=[store.id])
    read.tool_resources.code_interpreter = None
    modified = client.beta.assistants.update(created.id, tool_resources=read.tool_resources.model_dump())
    assert modified.tool_resources.file_search.vector_store_ids == [store.id]
    assert modified.tool_resources.code_interpreter.file_ids == [data_file.id]  # null: unchanged


def test_every_request_model_the_sdk_dumps_with_nulls_is_accepted(client, data_file, store, upstream):
    """The audit: the SDK's models that mirror request fields, dumped with their nulls, on every
    create and modify that takes them."""
    tools = [
        FunctionTool(type="function", function=FunctionDefinition(name="lookup")).model_dump(),
        FileSearchTool(type="file_search").model_dump(),
        FileSearchTool(type="file_search", file_search=FileSearch(
            ranking_options=FileSearchRankingOptions(score_threshold=0.2))).model_dump(),
        CodeInterpreterTool(type="code_interpreter").model_dump(),
    ]
    assert tools[0]["function"]["description"] is None and tools[1]["file_search"] is None
    response_format = ResponseFormatJSONSchema(
        type="json_schema", json_schema=JSONSchema(name="answer")).model_dump()
    assert response_format["json_schema"]["strict"] is None
    resources = assistant_types.ToolResources(
        file_search=assistant_types.ToolResourcesFileSearch(vector_store_ids=[store.id])).model_dump()
    assistant = client.beta.assistants.create(model="gpt-4o", tools=tools[:2] + tools[3:],
                                              response_format=response_format,
                                              tool_resources=resources)
    assert [t.type for t in assistant.tools] == ["function", "file_search", "code_interpreter"]
    assert assistant.tools[0].function.name == "lookup"
    # The assistant as read, its tools posted back whole.
    modified = client.beta.assistants.update(
        assistant.id, tools=[t.model_dump() for t in assistant.tools] + [tools[2]],
        response_format=assistant.response_format.model_dump())
    assert modified.tools[3].file_search.ranking_options.score_threshold == 0.2

    attachment = Attachment(file_id=data_file.id, tools=[CodeInterpreterTool(type="code_interpreter")])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi",
                                                   "attachments": [attachment.model_dump()]}])
    image = client.files.create(file=("dot.png", io.BytesIO(_PNG)), purpose="vision")
    block = ImageFileContentBlock(type="image_file", image_file=ImageFile(file_id=image.id)).model_dump()
    assert block["image_file"]["detail"] is None
    message = client.beta.threads.messages.create(thread.id, role="user", content=[block])
    assert message.content[0].image_file.detail == "auto"

    upstream.enqueue(Reply(text="ok"))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50,
        tool_choice=AssistantToolChoice(type="file_search").model_dump(),
        truncation_strategy=TruncationStrategy(type="last_messages", last_messages=5).model_dump())
    assert run.status == "completed", run.last_error
    assert run.tool_choice.type == "file_search" and run.truncation_strategy.last_messages == 5

    upstream.enqueue(Reply(text="ok"))
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, poll_interval_ms=50,
        thread={"messages": [{"role": "user", "content": "hi", "metadata": None,
                              "attachments": None}],
                "tool_resources": thread_types.ToolResources().model_dump()},
        tool_resources=thread_types.ToolResources(
            code_interpreter=thread_types.ToolResourcesCodeInterpreter(file_ids=[data_file.id])).model_dump())
    assert run.status == "completed", run.last_error


def test_a_null_for_a_required_field_still_fails_in_the_apis_words(http, store):
    status, error = _post(http, "/assistants", {"model": None})
    assert status == 400
    assert error["message"] == "Invalid type for 'model': expected a string, but got null instead."
    assert error["param"] == "model"


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/assistants", {"model": "gpt-4o", "tool_resources": {"file_search": "none"}},
     "tool_resources.file_search"),
    ("/assistants", {"model": "gpt-4o", "tool_resources": {"file_search": 5}},
     "tool_resources.file_search"),
    ("/threads", {"tool_resources": {"code_interpreter": True}}, "tool_resources.code_interpreter"),
    ("/assistants", {"model": "gpt-4o", "reasoning_effort": True}, "reasoning_effort"),
    ("/assistants", {"model": "gpt-4o", "tools": [{"type": None}]}, "tools[0].type"),
    ("/assistants", {"model": "gpt-4o", "tools": [{"type": {"a": 1}}]}, "tools[0].type"),
    ("/assistants", {"model": "gpt-4o", "temperature": False}, "temperature"),
    ("/assistants", {"model": "gpt-4o", "response_format": {"type": "json_schema"}},
     "response_format.json_schema"),
    ("/assistants", {"model": "gpt-4o", "tool_resources": {"file_search": {
        "vector_store_ids": [], "vector_stores": []}}}, "tool_resources.file_search"),
    ("/threads", {"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
])
def test_no_error_message_shows_python_reprs_or_validator_internals(http, path, body, param):
    status, error = _post(http, path, body)
    assert status == 400, error
    assert error["param"] == param, error
    assert not PYTHON_ISMS.search(error["message"]), error["message"]


def test_a_body_that_is_not_an_object_is_named_in_json_terms(http):
    status, error = _post(http, "/threads", [1, 2])
    assert status == 400
    assert error["message"] == "Invalid type for request body: expected an object, but got an array instead."


def test_missing_tool_outputs_are_listed_as_json(client, upstream):
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[
        {"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b"}}])
    upstream.enqueue(Reply(tool_calls=[("a", "{}"), ("b", "{}")]))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    calls = run.required_action.submit_tool_outputs.tool_calls
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": calls[0].id, "output": "1"}])
    message = caught.value.body["message"]
    assert f'["{calls[0].id}", "{calls[1].id}"]' in message and not PYTHON_ISMS.search(message)


def _post(http, path: str, body: object) -> tuple[int, dict]:
    response = http.post(path, json=body, headers={"OpenAI-Beta": "assistants=v2"})
    return response.status_code, response.json().get("error") or {}


# A 1x1 PNG.
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
