"""Threads and messages through the official SDK."""

from __future__ import annotations

import io

import openai
import pytest


def test_it_creates_a_thread_with_messages_and_tool_resources(client):
    upload = client.files.create(file=("data.csv", io.BytesIO(b"a,b\n1,2\n")), purpose="assistants")
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "First"},
            {"role": "assistant", "content": "Second"},
            {"role": "user", "content": [{"type": "text", "text": "Third"}],
             "attachments": [{"file_id": upload.id, "tools": [{"type": "code_interpreter"}]}]},
        ],
        tool_resources={"code_interpreter": {"file_ids": [upload.id]}},
        metadata={"user": "42"},
    )
    assert thread.id.startswith("thread_")
    assert thread.tool_resources.code_interpreter.file_ids == [upload.id]
    assert thread.metadata == {"user": "42"}

    messages = client.beta.threads.messages.list(thread.id, order="asc")
    assert [m.content[0].text.value for m in messages.data] == ["First", "Second", "Third"]
    assert [m.role for m in messages.data] == ["user", "assistant", "user"]
    assert messages.data[2].attachments[0].file_id == upload.id
    assert all(m.thread_id == thread.id and m.run_id is None for m in messages.data)


def test_it_creates_an_empty_thread_and_modifies_and_deletes_it(client):
    thread = client.beta.threads.create()
    assert thread.metadata == {} and thread.object == "thread"
    assert client.beta.threads.retrieve(thread.id).id == thread.id
    modified = client.beta.threads.update(thread.id, metadata={"topic": "x"})
    assert modified.metadata == {"topic": "x"}
    deleted = client.beta.threads.delete(thread.id)
    assert deleted.deleted and deleted.object == "thread.deleted"
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)


def test_it_handles_every_kind_of_message_content(client):
    image = client.files.create(file=("pic.png", io.BytesIO(b"\x89PNG\r\n\x1a\n")), purpose="vision")
    thread = client.beta.threads.create()
    text = client.beta.threads.messages.create(thread.id, role="user", content="Hello")
    parts = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "Look:"},
            {"type": "image_file", "image_file": {"file_id": image.id, "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
        metadata={"k": "v"},
    )
    assert text.content[0].text.value == "Hello" and text.content[0].text.annotations == []
    assert parts.content[1].image_file.file_id == image.id
    assert parts.content[1].image_file.detail == "low"
    assert parts.content[2].image_url.url == "https://example.com/cat.png"
    assert parts.status == "completed" and parts.role == "user"

    fetched = client.beta.threads.messages.retrieve(parts.id, thread_id=thread.id)
    assert fetched.model_dump() == parts.model_dump()
    modified = client.beta.threads.messages.update(parts.id, thread_id=thread.id, metadata={"k": "w"})
    assert modified.metadata == {"k": "w"}
    deleted = client.beta.threads.messages.delete(text.id, thread_id=thread.id)
    assert deleted.deleted and deleted.object == "thread.message.deleted"
    remaining = [m.id for m in client.beta.threads.messages.list(thread.id)]
    assert remaining == [parts.id]


def test_messages_paginate_and_filter_by_run(client, orm):
    from apps.threads.models import Message

    thread = client.beta.threads.create()
    ids = [client.beta.threads.messages.create(thread.id, role="user", content=f"m{i}").id
           for i in range(5)]
    Message.objects.filter(pk__in=ids[:2]).update(run_id="run_abc")
    listed = [m.id for m in client.beta.threads.messages.list(thread.id, limit=2, order="asc")
              ]
    assert listed == ids
    by_run = client.beta.threads.messages.list(thread.id, run_id="run_abc", order="asc")
    assert [m.id for m in by_run.data] == ids[:2]
    empty = client.beta.threads.messages.list(thread.id, run_id="run_none")
    assert empty.data == [] and empty.has_more is False


def test_another_projects_thread_and_messages_are_invisible(client, other_client):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "secret"}])
    message_id = client.beta.threads.messages.list(thread.id).data[0].id
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.retrieve(thread.id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.messages.list(thread.id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.messages.retrieve(message_id, thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.messages.create(thread.id, role="user", content="hi")


def test_a_message_needs_a_known_role_and_content(client):
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.threads.messages.create(thread.id, role="system", content="x")
    assert raised.value.body["param"] == "role"
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.threads.messages.create(thread.id, role="user", content=[])
    assert raised.value.body["param"] == "content"


def test_an_image_url_must_be_a_url(client):
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.threads.messages.create(thread.id, role="user", content=[
            {"type": "image_url", "image_url": {"url": "not a url"}}])
    assert raised.value.body["param"] == "content[0].image_url.url"
    assert "Expected a valid URL" in raised.value.body["message"]


def test_ids_and_helpers_that_exclude_each_other_are_refused_clearly(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.threads.create(tool_resources={"file_search": {
            "vector_store_ids": ["vs_abc"], "vector_stores": [{"file_ids": []}]}})
    assert raised.value.body["param"] == "tool_resources.file_search"
    assert raised.value.body["message"] == (
        "Invalid 'tool_resources.file_search': only one of 'vector_store_ids' or 'vector_stores' "
        "may be given.")
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.threads.update(thread.id, tool_resources={
            "file_search": {"vector_stores": [{"file_ids": []}]}})
    assert raised.value.body["param"] == "tool_resources.file_search.vector_stores"


def test_a_thread_holds_at_most_100000_messages(client, orm):
    from django.db import connection

    from apps.threads.models import Message, Thread

    thread = client.beta.threads.create()
    project_id = Thread.objects.get(pk=thread.id).project_id
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Message._meta.db_table} (id, project_id, created_ns, metadata, thread_id,"
            " role, content, status) SELECT 'msg_bulk' || g || %s, %s, g, '{}', %s, 'user', '[]',"
            " 'completed' FROM generate_series(1, 99999) AS g", [thread.id[-12:], project_id, thread.id])
    client.beta.threads.messages.create(thread.id, role="user", content="the 100,000th")
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.threads.messages.create(thread.id, role="user", content="one too many")
    assert "maximum of 100000 messages" in raised.value.body["message"]
    client.beta.threads.delete(thread.id)
