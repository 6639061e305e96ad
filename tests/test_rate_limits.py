"""Per-project rate limits and quotas, through the official SDK with its default retries on.
The suite's shared project runs with raised limits (conftest); each test here makes a project
with its own."""

from __future__ import annotations

import io
import re
import time
import uuid

import httpx2
import openai
import pytest

from tests.conftest import new_project_key
from tests.support.limits import WebProcess, project_with_limits

DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$")
BETA = {"OpenAI-Beta": "assistants=v2"}


def sdk(base_url: str, key: str, seen: list | None = None) -> openai.OpenAI:
    """The SDK as an application uses it: default retries (max_retries is not touched)."""
    hooks = {"response": [seen.append]} if seen is not None else {}
    return openai.OpenAI(base_url=base_url, api_key=key,
                         http_client=openai.DefaultHttpxClient(event_hooks=hooks))


def metric(root: str, name: str, **labels: str) -> float:
    text = httpx2.get(f"{root}/metrics", timeout=10).text
    wanted = "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    for line in text.splitlines():
        if line.startswith(name + wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def root(api_base) -> str:
    return api_base.rsplit("/v1", 1)[0]


@pytest.fixture(scope="module")
def faq_web(stack, tmp_path_factory):
    """A second web process of the same deployment, with the FAQ's default limits."""
    env = {k: v for k, v in stack.env.items() if not k.startswith("RATE_LIMIT_")}
    with WebProcess(env, tmp_path_factory.mktemp("faq-web") / "web.log") as web:
        yield web


def test_the_sdk_backs_off_on_a_429_and_then_succeeds(stack, orm, api_base, root):
    project_id, key = project_with_limits(stack, rate_limit_get_rpm=30)
    seen: list[httpx2.Response] = []
    arrived: list[float] = []
    client = sdk(api_base, key, seen)
    client._client.event_hooks["response"].append(lambda _: arrived.append(time.monotonic()))
    for _ in range(60):  # 30 a minute, one more every 2 s: the burst runs out within 60 calls
        assert client.beta.assistants.list().data == []
        if any(r.status_code == 429 for r in seen):
            break
    refused = [index for index, r in enumerate(seen) if r.status_code == 429]
    assert len(refused) == 1 and refused[0] == len(seen) - 2 and seen[-1].status_code == 200
    # The SDK waited as told (retry-after-ms), then its retry went through.
    answer = seen[refused[0]]
    assert arrived[-1] - arrived[-2] >= int(answer.headers["retry-after-ms"]) / 1000 - 0.05

    answer.read()
    error = answer.json()["error"]
    assert error["type"] == "rate_limit_exceeded" and error["code"] == "rate_limit_exceeded"
    assert "Limit 30" in error["message"] and "try again in" in error["message"]
    assert project_id in error["message"] and "GET" in error["message"]
    assert answer.headers["x-ratelimit-limit-requests"] == "30"
    assert answer.headers["x-ratelimit-remaining-requests"] == "0"
    assert DURATION.match(answer.headers["x-ratelimit-reset-requests"])
    assert 0 < int(answer.headers["retry-after-ms"]) <= 2000
    assert answer.headers["retry-after"] in ("1", "2")
    assert answer.headers["x-should-retry"] == "true"
    assert metric(root, "assistants_rate_limited_total", project=project_id, request_class="get") == 1


def test_every_request_class_carries_the_rate_limit_headers(stack, orm, api_base):
    # Limits that refill slowly (one per 6-10 s), so the counts below barely move meanwhile.
    _, key = project_with_limits(stack, rate_limit_get_rpm=9, rate_limit_post_rpm=8,
                                 rate_limit_runs_rpm=7, rate_limit_delete_rpm=6)
    client = sdk(api_base, key)

    def check(raw, limit: int, remaining: int) -> None:
        assert raw.headers["x-ratelimit-limit-requests"] == str(limit)
        assert int(raw.headers["x-ratelimit-remaining-requests"]) in (remaining, remaining + 1)
        assert DURATION.match(raw.headers["x-ratelimit-reset-requests"]), raw.headers

    created = client.beta.assistants.with_raw_response.create(model="gpt-4o")
    check(created, 8, 7)
    assistant = created.parse()
    check(client.beta.assistants.with_raw_response.list(), 9, 8)
    check(client.beta.assistants.with_raw_response.retrieve(assistant.id), 9, 7)
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.with_raw_response.create(thread_id=thread.id, assistant_id=assistant.id)
    check(run, 7, 6)
    check(client.beta.threads.with_raw_response.create_and_run(assistant_id=assistant.id), 7, 5)
    check(client.beta.threads.with_raw_response.delete(thread.id), 6, 5)

    # Refusals carry them too, and say they are final.
    with httpx2.Client(base_url=api_base, headers={"Authorization": f"Bearer {key}", **BETA}) as http:
        missing = http.get("/assistants/asst_missing")
        assert missing.status_code == 404 and missing.headers["x-should-retry"] == "false"
        check(missing, 9, 6)
        invalid = http.post("/assistants", json={"model": "gpt-4o", "temperature": 9})
        assert invalid.status_code == 400 and invalid.headers["x-should-retry"] == "false"
        check(invalid, 8, 5)
        unknown = http.get("/no-such-endpoint")
        assert unknown.status_code == 404 and unknown.headers["x-should-retry"] == "false"


def test_the_reset_header_uses_openais_duration_format():
    from apps.core.ratelimit import format_duration

    assert [format_duration(ms) for ms in (20, 999, 1000, 17_280, 60_000, 360_000, 86_400, 3_723_000)] == [
        "20ms", "999ms", "1s", "17.28s", "1m0s", "6m0s", "1m26.4s", "1h2m3s"]


def test_limits_are_shared_across_two_web_processes(stack, orm, api_base, faq_web):
    _, key = project_with_limits(stack, rate_limit_get_rpm=10)
    headers = {"Authorization": f"Bearer {key}", **BETA}
    with httpx2.Client(headers=headers) as http:
        remaining = []
        for index in range(10):
            base = api_base if index % 2 == 0 else faq_web.base_url
            answer = http.get(f"{base}/assistants")
            assert answer.status_code == 200
            remaining.append(int(answer.headers["x-ratelimit-remaining-requests"]))
        assert remaining == list(range(9, -1, -1))
        for base in (api_base, faq_web.base_url):
            refused = http.get(f"{base}/assistants")
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "rate_limit_exceeded"


def test_the_defaults_are_the_faqs(stack, faq_web):
    key = new_project_key(stack)
    client = sdk(faq_web.base_url, key)
    assistant = client.beta.assistants.with_raw_response.create(model="gpt-4o")
    assert assistant.headers["x-ratelimit-limit-requests"] == "300"
    listed = client.beta.assistants.with_raw_response.list()
    assert listed.headers["x-ratelimit-limit-requests"] == "1000"
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.with_raw_response.create(thread_id=thread.id,
                                                             assistant_id=assistant.parse().id)
    assert run.headers["x-ratelimit-limit-requests"] == "200"
    deleted = client.beta.assistants.with_raw_response.delete(assistant.parse().id)
    assert deleted.headers["x-ratelimit-limit-requests"] == "300"
    assert int(deleted.headers["x-ratelimit-remaining-requests"]) == 299


def test_a_redis_outage_fails_open(stack, orm, tmp_path):
    from ops import embedded

    redis_process, redis_url = embedded.start_redis(tmp_path / "limits-redis")
    env = {**stack.env, "RATE_LIMIT_REDIS_URL": redis_url}
    _, key = project_with_limits(stack, rate_limit_get_rpm=5)
    try:
        with WebProcess(env, tmp_path / "web.log") as web:
            client = sdk(web.base_url, key)
            first = client.beta.assistants.with_raw_response.list()
            assert first.headers["x-ratelimit-remaining-requests"] == "4"
            before = metric(web.root, "assistants_limiter_backend_errors_total", component="rate_limiter")
            redis_process.terminate()
            redis_process.wait(timeout=10)
            started = time.monotonic()
            for _ in range(12):  # well past the limit of 5: nothing is limited, nothing fails
                answer = client.beta.assistants.with_raw_response.list()
                assert answer.http_response.status_code == 200
                assert "x-ratelimit-limit-requests" not in answer.headers
            assert time.monotonic() - started < 10
            created = client.beta.assistants.with_raw_response.create(
                model="gpt-4o", extra_headers={"Idempotency-Key": uuid.uuid4().hex})
            assert created.http_response.status_code == 200
            assert "failing open" in web.log()
            after = metric(web.root, "assistants_limiter_backend_errors_total", component="rate_limiter")
            assert after >= before + 12
    finally:
        if redis_process.poll() is None:
            redis_process.terminate()


def test_uploads_past_the_storage_quota_are_refused(stack, orm, api_base, root):
    project_id, key = project_with_limits(stack, storage_limit_bytes=1000)
    client = sdk(api_base, key)
    client.files.create(file=("a.txt", io.BytesIO(b"a" * 600)), purpose="assistants")
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("b.txt", io.BytesIO(b"b" * 600)), purpose="assistants")
    error = refused.value.body
    assert refused.value.code == "quota_exceeded" and error["param"] == "file"
    assert "(600 of 1000 bytes)" in error["message"] and "quota" in error["message"]
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert [f.filename for f in client.files.list()] == ["a.txt"]
    assert metric(root, "assistants_quota_refusals_total", project=project_id, quota="storage") == 1


def test_the_storage_quota_is_off_by_default(client):
    uploaded = client.files.create(file=("big.txt", io.BytesIO(b"x" * 2_000_000)), purpose="assistants")
    assert uploaded.bytes == 2_000_000
    client.files.delete(uploaded.id)


def test_a_run_past_the_token_quota_fails_with_rate_limit_exceeded(stack, orm, api_base, root,
                                                                   fake_upstream):
    from tests.fake_upstream import Reply

    project_id, key = project_with_limits(stack, tokens_per_minute=50)
    client = sdk(api_base, key)
    fake_upstream.reset()
    fake_upstream.enqueue(Reply(text="fine", prompt_tokens=40, completion_tokens=20))
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "one"}])
    first = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                      poll_interval_ms=50)
    assert first.status == "completed"
    calls = len(fake_upstream.chat_requests())
    second = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                       poll_interval_ms=50)
    assert second.status == "failed" and second.last_error.code == "rate_limit_exceeded"
    assert re.search(r"tokens per min \(TPM\): Limit 50, Used \d+", second.last_error.message)
    assert len(fake_upstream.chat_requests()) == calls  # refused before the upstream call
    # Another model has its own minute.
    other = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                      model="gpt-4o-mini", poll_interval_ms=50)
    assert other.status == "completed"
    assert metric(root, "assistants_quota_refusals_total", project=project_id, quota="tokens") == 1
    fake_upstream.reset()


def test_the_admin_shows_a_projects_limits_and_usage(stack, orm, api_base):
    from django.contrib.auth.models import User
    from django.test import Client

    browser = Client()
    browser.force_login(User.objects.create_superuser(f"admin-{uuid.uuid4().hex[:8]}", "a@x.com", "pw"))
    # Limits that refill slowly (one per 10 s), so what was used still shows a moment later.
    project_id, key = project_with_limits(stack, rate_limit_get_rpm=6, rate_limit_post_rpm=6,
                                          storage_limit_bytes=10_000)
    client = sdk(api_base, key)
    for _ in range(3):
        client.beta.assistants.list()
    client.files.create(file=("a.txt", io.BytesIO(b"a" * 600)), purpose="assistants")
    page = browser.get(f"/admin/core/project/{project_id}/change/").content.decode()
    assert 'name="rate_limit_get_rpm"' in page and 'value="6"' in page
    assert 'name="storage_limit_bytes"' in page and 'name="tokens_per_minute"' in page
    assert "GET requests: 3 used of 6 per minute (3 left)" in page
    assert "POST requests: 1 used of 6 per minute (5 left)" in page
    assert "DELETE requests: 0 used of" in page
    assert "File storage: 600 bytes of 10000 bytes" in page
