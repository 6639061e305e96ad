"""No input gets a 500 (issue 19): NUL bytes and lone surrogates anywhere in a request, integers
past a column's range, integral floats, scalar `file_id` names, and `purpose: "evals"`."""

from __future__ import annotations

import io
import json

import pytest

BETA = {"OpenAI-Beta": "assistants=v2"}


def _error(response, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


@pytest.fixture(scope="module")
def objects(api_base, api_key):
    """An assistant, a thread with a message, a file and a vector store to aim requests at."""
    import httpx2

    with httpx2.Client(base_url=api_base, timeout=60,
                       headers={"Authorization": f"Bearer {api_key}", **BETA}) as raw:
        assistant = raw.post("/assistants", json={"model": "gpt-4o"}).json()["id"]
        thread = raw.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()
        message = raw.get(f"/threads/{thread['id']}/messages").json()["data"][0]["id"]
        file = raw.post("/files", files={"file": ("a.txt", b"alpha beta")},
                        data={"purpose": "assistants"}).json()["id"]
        store = raw.post("/vector_stores", json={"name": "s"}).json()["id"]
        yield {"assistant": assistant, "thread": thread["id"], "message": message, "file": file,
               "store": store}


@pytest.fixture
def api(http):
    http.headers.update(BETA)
    return http


STORED_STRINGS = [
    ("/assistants", {"model": "gpt-4o", "name": "a\u0000b"}, "name"),
    ("/assistants", {"model": "gpt-4o", "description": "\u0000"}, "description"),
    ("/assistants", {"model": "gpt-4o", "instructions": "x\u0000"}, "instructions"),
    ("/assistants", {"model": "gpt-4o", "metadata": {"k": "v\u0000"}}, "metadata.k"),
    ("/assistants", {"model": "gpt-4o", "metadata": {"k\u0000": "v"}}, "metadata"),
    ("/assistants", {"model": "gpt-4o", "tools": [{"type": "function", "function": {
        "name": "f", "description": "d\u0000"}}]}, "tools[0].function.description"),
    ("/assistants", {"model": "gpt-4o", "response_format": {"type": "json_schema", "json_schema": {
        "name": "n", "schema": {"type": "object", "x\u0000": 1}}}}, "response_format.json_schema.schema"),
    ("/threads", {"messages": [{"role": "user", "content": "a\u0000b"}]}, "messages[0].content"),
    ("/threads", {"metadata": {"a": "b"}, "tool_resources": {"code_interpreter": {
        "file_ids": ["file-\u0000"]}}}, "tool_resources.code_interpreter.file_ids[0]"),
    ("/vector_stores", {"name": "s", "expires_after": {"anchor": "last_active_at", "days": 1,
                                                       "x\u0000": 1}}, "expires_after"),
    ("/vector_stores", {"file_ids": ["file-\u0000"]}, "file_ids[0]"),
]


@pytest.mark.parametrize(("path", "body", "param"), STORED_STRINGS)
def test_it_refuses_nul_in_any_stored_string_naming_the_field(api, path, body, param):
    error = _error(api.post(path, json=body))
    assert error["param"] == param
    assert "NUL" in error["message"] and param in error["message"]


def test_it_refuses_nul_in_message_content_tool_outputs_and_body_ids(api, objects):
    thread = objects["thread"]
    error = _error(api.post(f"/threads/{thread}/messages", json={"role": "user", "content": "a\u0000b"}))
    assert error["param"] == "content"
    error = _error(api.post(f"/threads/{thread}/runs", json={"assistant_id": "asst_\u0000"}))
    assert error["param"] == "assistant_id"
    error = _error(api.post(f"/vector_stores/{objects['store']}/files", json={"file_id": "file-\u0000"}))
    assert error["param"] == "file_id"
    error = _error(api.post(f"/vector_stores/{objects['store']}/files/{objects['file']}",
                            json={"attributes": {"k": "\u0000"}}))
    assert error["param"] == "attributes.k"
    error = _error(api.post(f"/threads/{thread}/runs", json={
        "assistant_id": objects["assistant"], "truncation_strategy": {"type": "auto", "x\u0000": 1}}))
    assert error["param"] == "truncation_strategy"


@pytest.mark.parametrize("path", [
    "/assistants", "/threads/{thread}/messages", "/threads/{thread}/runs", "/files",
    "/vector_stores", "/vector_stores/{store}/files",
])
@pytest.mark.parametrize("cursor", ["after", "before"])
def test_it_refuses_nul_in_list_cursors(api, objects, path, cursor):
    if path == "/files" and cursor == "before":
        cursor = "after"
    error = _error(api.get(path.format(**objects), params={cursor: "\u0000"}))
    assert error["param"] == cursor


def test_it_refuses_nul_in_path_ids_and_query_filters(api, objects):
    for path, param in [("/assistants/asst_%00", "assistant_id"),
                        (f"/threads/{objects['thread']}/messages/msg_%00", "message_id"),
                        ("/threads/thread_%00", "thread_id"), ("/files/file-%00", "file_id"),
                        ("/vector_stores/vs_%00", "vector_store_id")]:
        assert _error(api.get(path))["param"] == param, path
    assert _error(api.get("/files", params={"purpose": "a\u0000"}))["param"] == "purpose"
    assert _error(api.get(f"/vector_stores/{objects['store']}/files",
                          params={"filter": "\u0000"}))["param"] == "filter"
    error = _error(api.get(f"/threads/{objects['thread']}/messages", params={"run_id": "run_\u0000"}))
    assert error["param"] == "run_id"


def test_it_refuses_nul_in_upload_fields(api):
    response = api.post("/files", files={"file": ("a.txt", b"x")}, data={"purpose": "assistants\u0000"})
    assert _error(response)["param"] == "purpose"
    response = api.post("/files", files={"file": ("a.txt", b"x")},
                        data={"purpose": "assistants", "expires_after[anchor]": "created_at\u0000",
                              "expires_after[seconds]": "3600"})
    assert _error(response)["param"] == "expires_after[anchor]"


@pytest.mark.parametrize("escape", ["\\udc00", "\\ud800", "x\\ud83dy"])
def test_it_refuses_lone_surrogates_in_json_strings(api, escape):
    raw = ('{"model": "gpt-4o", "name": "' + escape + '"}').encode()
    error = _error(api.post("/assistants", content=raw, headers={"Content-Type": "application/json"}))
    assert error["param"] == "name"
    assert "surrogate" in error["message"]
    raw = ('{"model": "gpt-4o", "metadata": {"' + escape + '": "v"}}').encode()
    error = _error(api.post("/assistants", content=raw, headers={"Content-Type": "application/json"}))
    assert error["param"] == "metadata"


def test_a_valid_surrogate_pair_is_an_ordinary_character(api):
    raw = b'{"model": "gpt-4o", "name": "\\ud83d\\ude00"}'
    response = api.post("/assistants", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "\U0001F600"


@pytest.mark.parametrize("raw", [b'{"model": "gpt-4o", "temperature": NaN}',
                                 b'{"model": "gpt-4o", "metadata": {"k": "v"}, "top_p": -Infinity}'])
def test_non_json_constants_are_a_parse_error(api, raw):
    error = _error(api.post("/assistants", content=raw, headers={"Content-Type": "application/json"}))
    assert "could not parse the JSON body" in error["message"]


def test_a_number_past_the_float_range_is_refused_naming_the_field(api, objects):
    raw = b'{"model": "gpt-4o", "temperature": 1e400}'
    error = _error(api.post("/assistants", content=raw, headers={"Content-Type": "application/json"}))
    assert error["param"] == "temperature"
    raw = b'{"attributes": {"k": -1e999}}'
    error = _error(api.post(f"/vector_stores/{objects['store']}/files/{objects['file']}", content=raw,
                            headers={"Content-Type": "application/json"}))
    assert error["param"] == "attributes.k"


def test_hostile_nesting_is_a_400(api):
    deep = "[" * 5000 + "]" * 5000
    response = api.post("/assistants", content=f'{{"model": "gpt-4o", "metadata": {deep}}}',
                        headers={"Content-Type": "application/json"})
    _error(response)
    nested = {"model": "gpt-4o", "metadata": json.loads("[" * 80 + "]" * 80)}
    assert _error(api.post("/assistants", json=nested))["param"] == "metadata"


def test_token_limits_past_32_bits_are_stored_and_past_64_bits_refused_with_the_bound(
        api, objects, client, schema_recorder):
    thread = client.beta.threads.create()
    big = 2**31 + 5
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=objects["assistant"],
                                          max_prompt_tokens=big, max_completion_tokens=big)
    assert (run.max_prompt_tokens, run.max_completion_tokens) == (big, big)
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).max_prompt_tokens == big
    # The run ends on its own (the fake upstream answers at once); waiting for it keeps the
    # thread free without racing a cancel against its completion.
    client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=50)
    for field in ("max_prompt_tokens", "max_completion_tokens"):
        error = _error(api.post("/threads/runs", json={"assistant_id": objects["assistant"],
                                                       field: 2**63}))
        assert error["param"] == field
        assert error["code"] == "integer_above_max_value"
        assert str(2**63 - 1) in error["message"]
    # Every other unbounded integer is held to the same bound.
    error = _error(api.post("/vector_stores", json={"chunking_strategy": {"type": "static", "static": {
        "max_chunk_size_tokens": 800, "chunk_overlap_tokens": -2**70}}}))
    assert error["param"] == "chunking_strategy.static.chunk_overlap_tokens"
    error = _error(api.post(f"/threads/{thread.id}/runs", json={
        "assistant_id": objects["assistant"],
        "truncation_strategy": {"type": "last_messages", "last_messages": 10**30}}))
    assert error["param"] == "truncation_strategy.last_messages"


def test_integral_floats_become_integers(api, objects):
    response = api.post(f"/vector_stores/{objects['store']}/search",
                        json={"query": "alpha", "max_num_results": 5.0})
    assert response.status_code == 200, response.text
    thread = api.post("/threads", json={}).json()["id"]
    response = api.post(f"/threads/{thread}/runs", json={
        "assistant_id": objects["assistant"], "max_prompt_tokens": 1000.0,
        "truncation_strategy": {"type": "last_messages", "last_messages": 1.0}})
    assert response.status_code == 200, response.text
    assert '"last_messages":1}' in response.text.replace(" ", "")
    assert '"max_prompt_tokens":1000,' in response.text.replace(" ", "")
    api.post(f"/threads/{thread}/runs/{response.json()['id']}/cancel")
    # A fractional value is still a type error, and a number field keeps its float.
    error = _error(api.post(f"/vector_stores/{objects['store']}/search",
                            json={"query": "alpha", "max_num_results": 5.5}))
    assert error["param"] == "max_num_results"


def test_a_scalar_file_id_is_named_without_an_index(api, objects):
    error = _error(api.post(f"/vector_stores/{objects['store']}/files", json={"file_id": "file-nope"}))
    assert error["param"] == "file_id"
    assert error["message"] == "Invalid 'file_id': no file found with id 'file-nope'."
    error = _error(api.post(f"/threads/{objects['thread']}/messages", json={
        "role": "user", "content": "x",
        "attachments": [{"file_id": "file-nope", "tools": [{"type": "file_search"}]}]}))
    assert error["param"] == "attachments[0].file_id"
    error = _error(api.post(f"/vector_stores/{objects['store']}/file_batches", json={
        "files": [{"file_id": objects["file"]}, {"file_id": "file-nope"}]}))
    assert error["param"] == "files[1].file_id"
    error = _error(api.post(f"/vector_stores/{objects['store']}/file_batches", json={
        "file_ids": [objects["file"], objects["file"], "file-nope"]}))
    assert error["param"] == "file_ids[2]"


def test_an_evals_file_is_echoed_as_evals_and_fits_the_schema(client, schema_recorder):
    uploaded = client.files.create(file=("data.jsonl", io.BytesIO(b'{"a": 1}\n')), purpose="evals")
    assert uploaded.purpose == "evals"
    assert client.files.retrieve(uploaded.id).purpose == "evals"
    assert uploaded.id in [f.id for f in client.files.list(purpose="evals")]
    assert schema_recorder.checked >= 3
