"""Files through the official SDK: upload, list, retrieve, content, delete, size limits."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import openai
import pytest

from tests.conftest import TEST_UPLOAD_LIMIT


def test_it_uploads_lists_retrieves_downloads_and_deletes_a_file(client):
    uploaded = client.files.create(
        file=("notes.txt", io.BytesIO(b"hello world")),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert uploaded.id.startswith("file-") and uploaded.bytes == 11
    assert uploaded.filename == "notes.txt" and uploaded.purpose == "assistants"
    assert uploaded.status == "processed"
    assert uploaded.expires_at == uploaded.created_at + 3600

    assert client.files.retrieve(uploaded.id).model_dump() == uploaded.model_dump()
    assert client.files.content(uploaded.id).read() == b"hello world"
    assert client.files.wait_for_processing(uploaded.id).status == "processed"

    vision = client.files.create(file=("a.png", io.BytesIO(b"png")), purpose="vision")
    listed = client.files.list(purpose="vision")
    assert vision.id in [f.id for f in listed.data]
    assert uploaded.id not in [f.id for f in listed.data]

    deleted = client.files.delete(uploaded.id)
    assert deleted.deleted and deleted.object == "file" and deleted.id == uploaded.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_file_lists_follow_their_own_cursor_rules(client, http):
    ids = [client.files.create(file=(f"f{i}.txt", io.BytesIO(b"x")), purpose="user_data").id
           for i in range(3)]
    page = client.files.list(purpose="user_data", limit=2, order="asc")
    assert page.has_more is True
    walked = [f.id for f in page]
    assert [i for i in walked if i in ids] == ids
    too_many = http.get("/files", params={"limit": 10_001})
    assert too_many.status_code == 400
    assert too_many.json()["error"]["code"] == "integer_above_max_value"


def test_deleting_a_file_removes_it_from_tool_resources(client):
    uploaded = client.files.create(file=("x.csv", io.BytesIO(b"1")), purpose="assistants")
    assistant = client.beta.assistants.create(
        model="gpt-4o", tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [uploaded.id]}},
    )
    thread = client.beta.threads.create(tool_resources={"code_interpreter": {"file_ids": [uploaded.id]}})
    client.files.delete(uploaded.id)
    assert client.beta.assistants.retrieve(assistant.id).tool_resources.code_interpreter.file_ids == []
    assert client.beta.threads.retrieve(thread.id).tool_resources.code_interpreter.file_ids == []


def test_it_rejects_an_unknown_purpose(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.files.create(file=("x.txt", io.BytesIO(b"x")), purpose="wrong")
    assert raised.value.body["param"] == "purpose"


def test_another_projects_file_is_invisible(client, other_client):
    uploaded = client.files.create(file=("s.txt", io.BytesIO(b"secret")), purpose="assistants")
    with pytest.raises(openai.NotFoundError):
        other_client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        other_client.files.content(uploaded.id)
    assert uploaded.id not in [f.id for f in other_client.files.list()]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_100_mb_upload_streams_and_downloads_byte_identical(client, stack, tmp_path):
    size = 100 * 1024 * 1024
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for _ in range(size // (1024 * 1024)):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            out.write(block)
    with source.open("rb") as handle:
        uploaded = client.files.create(file=("big.bin", handle), purpose="assistants")
    assert uploaded.bytes == size

    downloaded = hashlib.sha256()
    with client.files.with_streaming_response.content(uploaded.id) as response:
        for chunk in response.iter_bytes():
            downloaded.update(chunk)
    assert downloaded.hexdigest() == digest.hexdigest()

    peak = max(_peak_rss_mb(pid) for pid in stack.web_pids())
    print(f"web process peak RSS after 100 MB upload + download: {peak:.1f} MB")
    assert peak < 200


def test_an_oversize_file_is_refused_with_413(client):
    oversize = io.BytesIO(b"\0" * (TEST_UPLOAD_LIMIT + 1))
    with pytest.raises(openai.APIStatusError) as raised:
        client.files.create(file=("huge.bin", oversize), purpose="assistants")
    assert raised.value.status_code == 413
    assert "Maximum content size limit" in raised.value.body["message"]


def test_an_upload_that_is_not_multipart_names_the_type_it_needs(http):
    response = http.post("/files", json={"purpose": "assistants"})
    assert response.status_code == 400
    assert "only accepts 'multipart/form-data' requests" in response.json()["error"]["message"]
