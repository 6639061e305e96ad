"""Assistants through the official SDK: every operation, pagination, and the limits."""

from __future__ import annotations

import openai
import pytest


def test_it_creates_retrieves_modifies_and_deletes_an_assistant(client):
    created = client.beta.assistants.create(
        model="gpt-4o",
        name="Math Tutor",
        description="Helps with math",
        instructions="You are a personal math tutor.",
        tools=[
            {"type": "code_interpreter"},
            {"type": "function", "function": {"name": "get_weather", "parameters": {
                "type": "object", "properties": {"city": {"type": "string"}}}}},
        ],
        metadata={"team": "edu"},
        temperature=0.5,
        top_p=0.9,
        response_format={"type": "json_object"},
    )
    assert created.id.startswith("asst_") and len(created.id) == len("asst_") + 24
    assert created.object == "assistant"
    assert created.tools[1].function.name == "get_weather"
    assert created.temperature == 0.5 and created.top_p == 0.9
    assert created.response_format.type == "json_object"

    fetched = client.beta.assistants.retrieve(created.id)
    assert fetched.model_dump() == created.model_dump()

    modified = client.beta.assistants.update(created.id, name="Tutor", metadata={"v": "2"})
    assert modified.name == "Tutor"
    assert modified.metadata == {"v": "2"}
    assert modified.instructions == "You are a personal math tutor."

    deleted = client.beta.assistants.delete(created.id)
    assert deleted.deleted is True and deleted.id == created.id
    assert deleted.object == "assistant.deleted"
    with pytest.raises(openai.NotFoundError) as raised:
        client.beta.assistants.retrieve(created.id)
    assert raised.value.body["message"] == f"No assistant found with id '{created.id}'."


def test_it_echoes_openai_defaults(client):
    created = client.beta.assistants.create(model="gpt-4o")
    assert created.tools == []
    assert created.metadata == {}
    assert created.name is None and created.instructions is None
    assert created.temperature == 1.0 and created.top_p == 1.0
    assert created.response_format == "auto"


def test_it_paginates_across_several_pages(client):
    created = [client.beta.assistants.create(model="gpt-4o", name=f"a{i}").id for i in range(7)]
    page = client.beta.assistants.list(limit=3, order="asc")
    seen = [assistant.id for assistant in page]
    assert [i for i in seen if i in created] == created
    assert page.has_more is True and len(page.data) == 3

    newest_first = [a.id for a in client.beta.assistants.list(limit=2)]
    assert [i for i in newest_first if i in created] == list(reversed(created))

    before = client.beta.assistants.list(before=created[4], order="asc", limit=2)
    assert [a.id for a in before.data] == created[2:4]


def test_another_projects_assistant_is_invisible(client, other_client):
    mine = client.beta.assistants.create(model="gpt-4o")
    with pytest.raises(openai.NotFoundError):
        other_client.beta.assistants.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.assistants.update(mine.id, name="stolen")
    with pytest.raises(openai.NotFoundError):
        other_client.beta.assistants.delete(mine.id)
    assert mine.id not in [a.id for a in other_client.beta.assistants.list()]


@pytest.mark.parametrize(
    ("field", "value", "code", "param"),
    [
        ("name", "n" * 257, "string_above_max_length", "name"),
        ("description", "d" * 513, "string_above_max_length", "description"),
        ("instructions", "i" * 256_001, "string_above_max_length", "instructions"),
        ("tools", [{"type": "code_interpreter"}] * 129, "array_above_max_length", "tools"),
        ("metadata", {f"k{i}": "v" for i in range(17)}, "object_above_max_properties", "metadata"),
        ("temperature", 2.01, "decimal_above_max_value", "temperature"),
        ("top_p", 1.01, "decimal_above_max_value", "top_p"),
    ],
)
def test_it_rejects_each_limit_exceeded_by_one(client, field, value, code, param):
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.assistants.create(model="gpt-4o", **{field: value})
    assert raised.value.status_code == 400
    assert raised.value.body["code"] == code
    assert raised.value.body["param"] == param
    assert param in raised.value.body["message"]


def test_it_accepts_each_limit_exactly(client):
    created = client.beta.assistants.create(
        model="gpt-4o",
        name="n" * 256,
        description="d" * 512,
        instructions="i" * 256_000,
        tools=[{"type": "code_interpreter"}] * 128,
        metadata={f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)},
    )
    assert len(created.tools) == 128


def test_metadata_key_and_value_lengths_are_enforced(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.assistants.create(model="gpt-4o", metadata={"k" * 65: "v"})
    assert raised.value.body["param"].startswith("metadata")
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.assistants.create(model="gpt-4o", metadata={"k": "v" * 513})
    assert raised.value.body["param"].startswith("metadata")


def test_it_rejects_unknown_fields(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.assistants.create(model="gpt-4o", extra_body={"colour": "blue"})
    assert raised.value.body["code"] == "unknown_parameter"
    assert raised.value.body["param"] == "colour"


def test_it_requires_the_model(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.assistants.create(extra_body={"name": "x"}, model=openai.NOT_GIVEN)
    assert raised.value.body["code"] == "missing_required_parameter"
    assert raised.value.body["param"] == "model"


def test_it_checks_referenced_files_exist(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.assistants.create(
            model="gpt-4o", tools=[{"type": "code_interpreter"}],
            tool_resources={"code_interpreter": {"file_ids": ["file-doesnotexist"]}},
        )
    assert raised.value.body["param"] == "tool_resources.code_interpreter.file_ids[0]"


def test_a_json_schema_response_format_needs_a_valid_name(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.assistants.create(model="gpt-4o", response_format={
            "type": "json_schema", "json_schema": {"name": "bad name", "schema": {"type": "object"}}})
    assert raised.value.body["param"] == "response_format.json_schema.name"
    fine = client.beta.assistants.create(model="gpt-4o", response_format={
        "type": "json_schema", "json_schema": {"name": "answer_v2", "schema": {"type": "object"}}})
    assert fine.response_format.json_schema.name == "answer_v2"


def test_modifying_takes_vector_store_ids_not_the_creation_helper(client):
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "file_search"}])
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.assistants.update(assistant.id, tool_resources={
            "file_search": {"vector_stores": [{"file_ids": []}]}})
    assert raised.value.body["code"] == "unknown_parameter"
    assert raised.value.body["param"] == "tool_resources.file_search.vector_stores"


def test_a_long_model_name_is_stored_whole(client):
    model = "org/" + "m" * 300
    assistant = client.beta.assistants.create(model=model)
    assert client.beta.assistants.retrieve(assistant.id).model == model
