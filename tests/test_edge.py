"""The web edge (issue 9, item 1): request bodies are bounded while they stream in, chunked
bodies are read rather than dropped, an unauthenticated body is never read, and framing errors
are 400s. Also the search amplification bounds (item 6). Raw sockets where a client library
would not send what a hostile one does."""

from __future__ import annotations

import json
import socket
import time

import pytest

BETA = {"OpenAI-Beta": "assistants=v2"}
# The default MAX_JSON_BODY_BYTES (the suite does not change it).
JSON_LIMIT = 32 * 1024 * 1024


def _connect(stack) -> socket.socket:
    sock = socket.create_connection((stack.host, stack.port), timeout=15)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:length]


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _error(body: bytes) -> dict:
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_a_chunked_json_body_is_read_not_dropped(http):
    def body():
        yield b'{"metadata": '
        yield b'{"k": "v"}}'

    response = http.post("/threads", content=body(), headers={**BETA, "Content-Type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"k": "v"}


def test_a_chunked_upload_is_read_too(http):
    boundary = "edgeboundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode() + b"x" * 3_000_000 + \
        f"\r\n--{boundary}--\r\n".encode()

    def body():
        for start in range(0, len(form), 256 * 1024):
            yield form[start:start + 256 * 1024]

    response = http.post("/files", content=body(),
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == 3_000_000


def test_a_chunked_body_past_the_limit_is_refused_with_413_as_it_streams(stack, api_key):
    with _connect(stack) as sock:
        sock.sendall(_head("POST", "/v1/threads", {
            "Authorization": f"Bearer {api_key}", **BETA, "Content-Type": "application/json",
            "Transfer-Encoding": "chunked"}))
        piece = _chunk(b'{"metadata": {"k": "' + b"v" * (1024 * 1024 - 20))
        sent = 0
        started = time.monotonic()
        try:
            # Far more than the limit, unless the server answers first.
            while sent < 3 * JSON_LIMIT:
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, headers, body = _read_response(sock)
    assert status == 413
    # Socket buffers hold a few MB in flight; three times the limit would mean it kept reading.
    assert sent <= JSON_LIMIT + 16 * 1024 * 1024, "the server read far past its limit"
    error = _error(body)
    assert str(JSON_LIMIT) in error["message"] and "MAX_JSON_BODY_BYTES" in error["message"]
    assert headers.get("connection") == "close"
    assert time.monotonic() - started < 20


def test_a_declared_length_past_the_limit_is_refused_before_the_body_is_sent(stack, api_key):
    for path, limit in [("/v1/threads", JSON_LIMIT), ("/v1/files", 110 * 1024 * 1024)]:
        with _connect(stack) as sock:
            sock.sendall(_head("POST", path, {
                "Authorization": f"Bearer {api_key}", **BETA, "Content-Type": "application/json",
                "Content-Length": str(limit + 10 * 1024 * 1024)}))
            status, _, body = _read_response(sock)
        assert status == 413, path
        assert str(limit) in _error(body)["message"]


@pytest.mark.parametrize("authorization", [None, "Bearer sk-not-a-key", "Basic abc"])
def test_an_unauthenticated_body_is_never_read(stack, authorization):
    headers = {**BETA, "Content-Type": "application/json", "Content-Length": "1000000"}
    if authorization:
        headers["Authorization"] = authorization
    with _connect(stack) as sock:
        # Headers only: the server must answer without waiting for the promised megabyte.
        sock.sendall(_head("POST", "/v1/assistants", headers))
        status, headers_back, body = _read_response(sock)
    assert status == 401
    assert _error(body)["code"] in (None, "invalid_api_key")
    assert headers_back.get("x-request-id", "").startswith("req_")
    chunked = {name: value for name, value in headers.items() if name != "Content-Length"}
    with _connect(stack) as sock:
        sock.sendall(_head("POST", "/v1/files", {**chunked, "Transfer-Encoding": "chunked"}))
        status, _, _ = _read_response(sock)
    assert status == 401


@pytest.mark.parametrize("length", ["abc", "-5", "12, 13", "99999999999999999999999"])
@pytest.mark.parametrize("path", ["/v1/files", "/v1/threads"])
def test_a_malformed_content_length_is_a_400(stack, api_key, length, path):
    with _connect(stack) as sock:
        sock.sendall(_head("POST", path, {"Authorization": f"Bearer {api_key}", **BETA,
                                          "Content-Type": "application/json",
                                          "Content-Length": length}))
        status, _, body = _read_response(sock)
    assert status == 400
    if body.startswith(b"{"):
        assert _error(body)["type"] == "invalid_request_error"


def test_the_default_body_limit_holds_the_largest_legitimate_requests(client):
    instructions = "\U0001F600" * 256_000  # four UTF-8 bytes each, twelve when \u-escaped
    assistant = client.beta.assistants.create(model="gpt-4o", instructions=instructions)
    assert len(assistant.instructions) == 256_000
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "é" * 256_000}])
    assert thread.id.startswith("thread_")


# -- search amplification (issue 9, item 6) ---------------------------------------------------

@pytest.fixture(scope="module")
def store_id(api_base, api_key):
    import httpx2

    with httpx2.Client(base_url=api_base, timeout=60,
                       headers={"Authorization": f"Bearer {api_key}"}) as raw:
        yield raw.post("/vector_stores", json={"name": "bounds"}).json()["id"]


def test_search_caps_the_number_and_length_of_queries(http, store_id):
    started = time.monotonic()
    response = http.post(f"/vector_stores/{store_id}/search", json={"query": ["q"] * 20_000})
    assert response.status_code == 400, response.text
    assert time.monotonic() - started < 5
    error = response.json()["error"]
    assert error["param"] == "query" and error["code"] == "array_above_max_length"
    assert "maximum length 10" in error["message"]
    response = http.post(f"/vector_stores/{store_id}/search", json={"query": ["ok", "x" * 5000]})
    assert response.json()["error"]["param"] == "query[1]"
    response = http.post(f"/vector_stores/{store_id}/search", json={"query": "x" * 5000})
    assert response.json()["error"]["param"] == "query"
    response = http.post(f"/vector_stores/{store_id}/search", json={"query": ["a"] * 10})
    assert response.status_code == 200, response.text


def _nested(depth: int) -> dict:
    node: dict = {"type": "eq", "key": "k", "value": "v"}
    for _ in range(depth):
        node = {"type": "and", "filters": [node]}
    return node


def test_search_bounds_filter_depth_and_size(http, store_id):
    for depth in (9, 30, 400):
        response = http.post(f"/vector_stores/{store_id}/search",
                             json={"query": "q", "filters": _nested(depth)})
        assert response.status_code == 400, (depth, response.text)
    response = http.post(f"/vector_stores/{store_id}/search", json={"query": "q", "filters": _nested(9)})
    error = response.json()["error"]
    assert "at most 8 levels" in error["message"] and error["param"].startswith("filters")
    wide = {"type": "or", "filters": [{"type": "eq", "key": "k", "value": i} for i in range(65)]}
    response = http.post(f"/vector_stores/{store_id}/search", json={"query": "q", "filters": wide})
    assert response.status_code == 400 and "at most 64" in response.json()["error"]["message"]
    response = http.post(f"/vector_stores/{store_id}/search", json={"query": "q", "filters": _nested(8)})
    assert response.status_code == 200, response.text
