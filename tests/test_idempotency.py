"""Safe retries: Idempotency-Key on POSTs, and the SDK's own retries of run creation (which send
no key) recognised, so a lost response never makes a second run. Through the official SDK with
its default retries on."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid

import httpx2
import openai
import pytest

from tests.conftest import new_project_key
from tests.fake_upstream import Reply
from tests.support.limits import LossyProxy, WebProcess

BETA = {"OpenAI-Beta": "assistants=v2"}


def is_run_creation(method: str, path: str) -> bool:
    return method == "POST" and path.split("?")[0].endswith("/runs")


@pytest.fixture
def project(stack, orm):
    from apps.core.models import ApiKey, hash_api_key

    key = new_project_key(stack)
    return ApiKey.objects.get(key_hash=hash_api_key(key)).project_id, key


def runs_of(project_id: str) -> list[str]:
    from apps.runs.models import Run

    return list(Run.objects.filter(project_id=project_id).values_list("pk", flat=True))


def wait_until_done(client: openai.OpenAI, thread_id: str, run_id: str) -> None:
    deadline = time.monotonic() + 30
    while client.beta.threads.runs.retrieve(run_id, thread_id=thread_id).status in (
            "queued", "in_progress", "cancelling"):
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("with_key", [False, True], ids=["without-key", "with-idempotency-key"])
def test_a_lost_runs_create_response_leaves_exactly_one_run(stack, project, upstream, with_key):
    project_id, key = project
    proxy = LossyProxy(stack.port, is_run_creation)
    client = openai.OpenAI(base_url=proxy.base_url, api_key=key)  # default retries
    try:
        assistant = client.beta.assistants.create(model="gpt-4o")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "once"}])
        headers = {"Idempotency-Key": uuid.uuid4().hex} if with_key else {}
        run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id,
                                              extra_headers=headers)
        assert proxy.dropped  # the first answer was lost and the SDK retried
        attempts = [h for m, p, h in proxy.seen if is_run_creation(m, p)]
        assert [a.get("x-stainless-retry-count") for a in attempts] == ["0", "1"]
        assert runs_of(project_id) == [run.id]
        wait_until_done(client, thread.id, run.id)
        assert [r.id for r in client.beta.threads.runs.list(thread.id)] == [run.id]

    finally:
        proxy.close()
        client.close()


def test_a_lost_thread_and_run_response_makes_one_thread(stack, project, upstream, orm):
    from apps.threads.models import Thread

    project_id, key = project
    proxy = LossyProxy(stack.port, lambda method, path: method == "POST" and path.endswith("/threads/runs"))
    client = openai.OpenAI(base_url=proxy.base_url, api_key=key)
    try:
        assistant = client.beta.assistants.create(model="gpt-4o")
        run = client.beta.threads.create_and_run(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]})
        assert proxy.dropped
        assert runs_of(project_id) == [run.id]
        assert list(Thread.objects.filter(project_id=project_id).values_list("pk", flat=True)) == [run.thread_id]
    finally:
        proxy.close()
        client.close()


def test_an_idempotent_replay_returns_the_same_body(api_base, project):
    _, key = project
    idem = uuid.uuid4().hex
    with httpx2.Client(base_url=api_base, headers={"Authorization": f"Bearer {key}", **BETA}) as http:
        body = {"model": "gpt-4o", "name": "once", "metadata": {"n": "1"}}
        first = http.post("/assistants", json=body, headers={"Idempotency-Key": idem})
        second = http.post("/assistants", json=body, headers={"Idempotency-Key": idem})
        assert first.status_code == second.status_code == 200
        assert second.content == first.content
        assert second.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert "x-ratelimit-remaining-requests" in second.headers  # a replay is a request too
        assert [a["id"] for a in http.get("/assistants").json()["data"]] == [first.json()["id"]]

        # The same key with another body is refused for good.
        other = http.post("/assistants", json={**body, "name": "twice"}, headers={"Idempotency-Key": idem})
        assert other.status_code == 400 and other.headers["x-should-retry"] == "false"
        error = other.json()["error"]
        assert error["code"] == "idempotency_key_reused" and idem in error["message"]

        # A refusal is kept like any answer: the replay of a 400 is the same 400.
        bad = {"model": "gpt-4o", "temperature": 9}
        refused = http.post("/assistants", json=bad, headers={"Idempotency-Key": "bad-" + idem})
        again = http.post("/assistants", json=bad, headers={"Idempotency-Key": "bad-" + idem})
        assert refused.status_code == again.status_code == 400 and again.content == refused.content


def test_the_sdk_replays_with_the_same_key(api_base, project):
    _, key = project
    client = openai.OpenAI(base_url=api_base, api_key=key)
    idem = {"Idempotency-Key": uuid.uuid4().hex}
    first = client.beta.assistants.create(model="gpt-4o", name="sdk", extra_headers=idem)
    second = client.beta.assistants.create(model="gpt-4o", name="sdk", extra_headers=idem)
    assert second == first
    uploaded = client.files.create(file=("a.txt", io.BytesIO(b"abc")), purpose="assistants",
                                   extra_headers={"Idempotency-Key": "upload-" + idem["Idempotency-Key"]})
    # The SDK builds a new multipart body (a new boundary) each time: still the same request.
    again = client.files.create(file=("a.txt", io.BytesIO(b"abc")), purpose="assistants",
                                extra_headers={"Idempotency-Key": "upload-" + idem["Idempotency-Key"]})
    assert again.id == uploaded.id
    assert [f.id for f in client.files.list()] == [uploaded.id]
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("b.txt", io.BytesIO(b"abc")), purpose="assistants",
                            extra_headers={"Idempotency-Key": "upload-" + idem["Idempotency-Key"]})


def _stream_run(base_url: str, key: str, thread_id: str, body: dict, idem: str, out: list) -> None:
    with httpx2.Client(timeout=60, headers={"Authorization": f"Bearer {key}", **BETA}) as http:
        answer = http.post(f"{base_url}/threads/{thread_id}/runs", json=body,
                           headers={"Idempotency-Key": idem})
        out.append(answer)


def test_a_concurrent_duplicate_waits_for_the_first_and_gets_its_answer(api_base, project, upstream):
    project_id, key = project
    client = openai.OpenAI(base_url=api_base, api_key=key)
    upstream.enqueue(Reply(text="slow and steady", first_token_delay=1.5))
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    body = {"assistant_id": assistant.id, "stream": True}
    idem = uuid.uuid4().hex
    answers: list[httpx2.Response] = []
    first = threading.Thread(target=_stream_run, args=(api_base, key, thread.id, body, idem, answers))
    first.start()
    time.sleep(0.4)
    _stream_run(api_base, key, thread.id, body, idem, answers)  # arrives while the first runs
    first.join()
    assert [a.status_code for a in answers] == [200, 200]
    waited = [a for a in answers if a.headers.get("idempotent-replayed") == "true"]
    streamed = [a for a in answers if "idempotent-replayed" not in a.headers]
    assert len(waited) == len(streamed) == 1
    waited, streamed = waited[0], streamed[0]
    assert waited.content == streamed.content and b"slow and steady" in waited.content
    created = [json.loads(line[6:]) for line in waited.text.splitlines() if line.startswith("data: {")]
    assert runs_of(project_id) == [created[0]["id"]]


def test_a_duplicate_that_cannot_wait_gets_a_409_to_retry(stack, api_base, project, upstream, tmp_path):
    project_id, key = project
    env = {**stack.env, "IDEMPOTENCY_WAIT_SECONDS": "0.2"}
    client = openai.OpenAI(base_url=api_base, api_key=key)
    upstream.enqueue(Reply(text="slow", first_token_delay=2.0))
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    body = {"assistant_id": assistant.id, "stream": True}
    idem = uuid.uuid4().hex
    with WebProcess(env, tmp_path / "web.log") as impatient:
        answers: list[httpx2.Response] = []
        first = threading.Thread(target=_stream_run, args=(api_base, key, thread.id, body, idem, answers))
        first.start()
        time.sleep(0.5)
        duplicate: list[httpx2.Response] = []
        _stream_run(impatient.base_url, key, thread.id, body, idem, duplicate)
        first.join()
    conflict = duplicate[0]
    assert conflict.status_code == 409
    assert conflict.headers["x-should-retry"] == "true" and int(conflict.headers["retry-after-ms"]) > 0
    assert conflict.json()["error"]["code"] == "idempotency_request_in_progress"
    assert answers[0].status_code == 200 and len(runs_of(project_id)) == 1


def test_only_a_retry_of_the_latest_first_attempt_is_matched(api_base, project, upstream):
    """What is matched without a key: project, method, path (so the thread) and the exact body,
    with x-stainless-retry-count > 0, against the newest first attempt of that request."""
    project_id, key = project
    client = openai.OpenAI(base_url=api_base, api_key=key)
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create()
    raw = json.dumps({"assistant_id": assistant.id}).encode()
    with httpx2.Client(base_url=api_base, headers={"Authorization": f"Bearer {key}", **BETA,
                                                    "Content-Type": "application/json"}) as http:
        def post(retry_count: str) -> dict:
            answer = http.post(f"/threads/{thread.id}/runs", content=raw,
                               headers={"x-stainless-retry-count": retry_count})
            assert answer.status_code == 200, answer.text
            wait_until_done(client, thread.id, answer.json()["id"])
            return answer.json()

        first = post("0")
        second = post("0")  # the application asked again: a new run
        assert second["id"] != first["id"]
        retried = post("1")  # the SDK retrying that second call
        assert retried["id"] == second["id"]
        other = http.post(f"/threads/{thread.id}/runs", headers={"x-stainless-retry-count": "1"},
                          content=json.dumps({"assistant_id": assistant.id, "temperature": 0.5}))
        assert other.status_code == 200 and other.json()["id"] not in (first["id"], second["id"])
    assert len(runs_of(project_id)) == 3
