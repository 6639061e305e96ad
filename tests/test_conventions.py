"""Contract conventions every endpoint shares: auth, the beta header, the error envelope,
request ids, cursors, malformed bodies."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import make_client

BETA = {"OpenAI-Beta": "assistants=v2"}


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_a_missing_key_is_a_401(api_base, schema_recorder):
    import httpx2

    response = httpx2.get(f"{api_base}/assistants", headers=BETA)
    assert response.status_code == 401
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert "You didn't provide an API key" in error["message"]
    assert response.headers["x-request-id"].startswith("req_")


def test_a_wrong_key_is_a_401_through_the_sdk(api_base, schema_recorder):
    sdk = make_client(api_base, "sk-not-a-real-key", schema_recorder)
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk.beta.assistants.list()
    assert raised.value.status_code == 401
    assert raised.value.body["code"] == "invalid_api_key"
    assert raised.value.request_id.startswith("req_")


@pytest.mark.parametrize("path", ["/assistants", "/threads/thread_x"])
def test_the_beta_header_is_required_on_assistants_and_threads(http, path):
    response = http.get(path)
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "invalid_beta"
    assert error["message"].startswith("You must provide the 'OpenAI-Beta' header")


def test_the_v1_beta_header_gets_the_deprecation_error(http):
    response = http.get("/assistants", headers={"OpenAI-Beta": "assistants=v1"})
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "invalid_beta"
    assert error["message"].startswith("The v1 Assistants API has been deprecated.")


def test_files_do_not_need_the_beta_header(http):
    assert http.get("/files").status_code == 200


def test_malformed_json_is_a_400(http):
    response = http.post("/assistants", content=b"{not json",
                         headers={**BETA, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert "could not parse the JSON body" in _error(response)["message"]


def test_a_wrong_content_type_is_a_400(http):
    response = http.post("/assistants", content=b"model=gpt-4o",
                         headers={**BETA, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert "application/x-www-form-urlencoded" in _error(response)["message"]


def test_a_body_that_is_not_an_object_is_a_400(http):
    response = http.post("/assistants", json=["gpt-4o"], headers=BETA)
    assert response.status_code == 400
    assert _error(response)["type"] == "invalid_request_error"


def test_a_bad_cursor_is_a_400(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.assistants.list(after="asst_doesnotexist")
    assert raised.value.body["param"] == "after"


@pytest.mark.parametrize("limit", [0, 101])
def test_list_limits_are_enforced(client, limit):
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.assistants.list(limit=limit)
    assert raised.value.body["param"] == "limit"


def test_a_bad_order_is_a_400(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.assistants.list(order="sideways")
    assert raised.value.body["param"] == "order"


def test_an_unknown_url_is_a_json_404(http):
    response = http.get("/nothing-here", headers=BETA)
    assert response.status_code == 404
    assert _error(response)["message"] == "Invalid URL (GET /v1/nothing-here)"


def test_success_is_always_200_with_a_request_id(http):
    created = http.post("/assistants", json={"model": "gpt-4o"}, headers=BETA)
    assert created.status_code == 200
    assert created.headers["x-request-id"].startswith("req_")
    deleted = http.delete(f"/assistants/{created.json()['id']}", headers=BETA)
    assert deleted.status_code == 200


def test_health_and_readiness(api_base):
    import httpx2

    root = api_base.removesuffix("/v1")
    assert httpx2.get(f"{root}/healthz").json() == {"status": "ok"}
    ready = httpx2.get(f"{root}/readyz", timeout=10)
    body = ready.json()
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert ready.status_code == (200 if body["ready"] else 503)


@pytest.mark.parametrize(("path", "body", "param", "code"), [
    ("/threads", {"tool_resources": {"code_interpreter": {"file_ids": ["file-x"] * 21}}},
     "tool_resources.code_interpreter.file_ids", "array_above_max_length"),
    ("/threads", {"tool_resources": {"file_search": {"vector_store_ids": ["vs_a", "vs_b"]}}},
     "tool_resources.file_search.vector_store_ids", "array_above_max_length"),
    ("/threads", {"messages": [{"role": "user", "content": "x", "metadata": {"k": "v" * 513}}]},
     "messages[0].metadata.k", "string_above_max_length"),
    ("/threads/runs", {"assistant_id": "asst_x", "tools": [{"type": "code_interpreter"}] * 21},
     "tools", "array_above_max_length"),
    ("/threads/runs", {"assistant_id": "asst_x", "max_prompt_tokens": 255},
     "max_prompt_tokens", "integer_below_min_value"),
    ("/threads/runs", {"assistant_id": "asst_x", "temperature": 2.1}, "temperature", "decimal_above_max_value"),
    ("/threads/runs", {"assistant_id": "asst_x", "truncation_strategy": {"type": "last_messages",
                                                                         "last_messages": 0}},
     "truncation_strategy.last_messages", "integer_below_min_value"),
    ("/vector_stores", {"file_ids": ["file-x"] * 501}, "file_ids", "array_above_max_length"),
    ("/vector_stores", {"chunking_strategy": {"type": "static", "static": {
        "max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0}}},
     "chunking_strategy.static.max_chunk_size_tokens", "integer_above_max_value"),
    ("/vector_stores", {"expires_after": {"anchor": "last_active_at", "days": 366}},
     "expires_after.days", "integer_above_max_value"),
])
def test_limits_exceeded_by_one_across_endpoints(http, path, body, param, code):
    response = http.post(path, json=body, headers=BETA)
    assert response.status_code == 400, response.text
    error = _error(response)
    assert (error["param"], error["code"]) == (param, code), error
    assert f"'{param}'" in error["message"]


def test_deleting_while_paging_carries_on_past_a_deleted_cursor(other_client):
    """The SDK asks for the next page `after` the last item it yielded, which the loop has just
    deleted; the list carries on from where that item stood."""
    client = other_client
    created = {client.beta.assistants.create(model="gpt-4o").id for _ in range(25)}
    deleted = set()
    for assistant in client.beta.assistants.list(limit=10):
        client.beta.assistants.delete(assistant.id)
        deleted.add(assistant.id)
    assert deleted == created
    assert client.beta.assistants.list().data == []

    thread = client.beta.threads.create(messages=[{"role": "user", "content": str(n)} for n in range(12)])
    seen = []
    for message in client.beta.threads.messages.list(thread.id, limit=5, order="asc"):
        seen.append(message.content[0].text.value)
        client.beta.threads.messages.delete(message.id, thread_id=thread.id)
    assert seen == [str(n) for n in range(12)]


@pytest.mark.parametrize(("call", "param", "prefix"), [
    (lambda c: c.beta.assistants.retrieve("undefined"), "assistant_id", "asst"),
    (lambda c: c.beta.threads.retrieve("undefined"), "thread_id", "thread"),
    (lambda c: c.beta.threads.messages.retrieve("undefined", thread_id="thread_x"), "message_id", "msg"),
    (lambda c: c.beta.threads.runs.retrieve("undefined", thread_id="thread_x"), "run_id", "run"),
    (lambda c: c.files.retrieve("undefined"), "file_id", "file"),
    (lambda c: c.vector_stores.retrieve("undefined"), "vector_store_id", "vs"),
    (lambda c: c.vector_stores.file_batches.retrieve("undefined", vector_store_id="vs_x"), "batch_id", "vsfb"),
])
def test_an_id_with_the_wrong_prefix_is_a_400(client, call, param, prefix):
    with pytest.raises(openai.BadRequestError) as raised:
        call(client)
    assert raised.value.body["param"] == param
    assert raised.value.body["message"] == (
        f"Invalid '{param}': 'undefined'. Expected an ID that begins with '{prefix}'.")
