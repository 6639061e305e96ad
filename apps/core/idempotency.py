"""Safe retries of POSTs: a stored first response is replayed instead of doing the work again.

Two ways a request is recognised as a repeat, both within one project:
- an `Idempotency-Key` header on any POST: same key, method, path and body within
  IDEMPOTENCY_TTL_SECONDS (24 h) replays the first response; the same key with another body is
  a 400; a duplicate arriving while the first is still being worked on waits for it
  (IDEMPOTENCY_WAIT_SECONDS), then gets a 409 the SDK retries;
- no key, on run creation (`POST /v1/threads/{id}/runs`, `POST /v1/threads/runs`): a request
  whose `x-stainless-retry-count` is above 0 and whose method, path (so the thread) and exact
  body bytes equal those of an earlier attempt that finished less than
  RETRY_MATCH_WINDOW_SECONDS ago (or is still running) gets that attempt's response. A first
  attempt (count 0 or absent) always does the work and becomes the attempt retries match.

Records live in the limiter's Redis. Only answers that settle the request are kept (status
below 500, except 408/409/429, which the SDK retries); anything else is forgotten so the retry
does the work. Streamed answers are kept as their full event transcript."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.http import HttpResponse

from apps.core.errors import APIError, InvalidRequestError
from apps.core.ratelimit import RUNS_CREATE_PATH, limiter

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05
MAX_STORED_BYTES = 4 * 1024 * 1024
RETRYABLE_STATUSES = {408, 409, 429}


class Replay(Exception):  # noqa: N818 (not an error: carries the stored answer out of the view)
    def __init__(self, response: HttpResponse) -> None:
        self.response = response


class IdempotencyConflict(APIError):
    status_code = 409


@dataclass
class Claim:
    """This request owns the record under `key` and will store its answer there."""

    key: str
    kind: str  # "key" (Idempotency-Key) or "retry" (a recognised SDK retry of runs.create)
    fingerprint: str | None  # None until a multipart body has been parsed by the view
    ttl: int


def _body_fingerprint(request) -> str:
    """Method, path and body. JSON bodies compare byte for byte (the SDK resends the same
    bytes); a multipart body's boundary changes per attempt, so it compares by its form fields
    and each file's field, name, size and type."""
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    if request.content_type.startswith("multipart/"):
        for name in sorted(request.data.keys()):
            for value in request.data.getlist(name):
                if hasattr(value, "size"):
                    digest.update(f"file {name} {value.name} {value.size} {value.content_type}\n".encode())
                else:
                    digest.update(f"field {name} {value}\n".encode())
    else:
        digest.update(request._request.body)
    return digest.hexdigest()


def _read(client: redis.Redis, key: str) -> dict | None:
    raw = client.get(key)
    return json.loads(raw) if raw else None


def _pending_ttl() -> int:
    # A streamed run can hold its request open until the run expires.
    return settings.RUN_EXPIRY_SECONDS + 60


def begin(request, project) -> Claim | None:
    """Claim the request's record, or raise Replay with the stored answer; None when the
    request is not one this module tracks (or Redis is down: it then simply goes through)."""
    if request.method != "POST":
        return None
    header_key = request.headers.get("Idempotency-Key")
    retry_count = request.headers.get("x-stainless-retry-count", "0")
    if header_key:
        key = f"idempotency:{project.pk}:{hashlib.sha256(header_key.encode()).hexdigest()}"
        kind, ttl = "key", settings.IDEMPOTENCY_TTL_SECONDS
        fingerprint = None if request.content_type.startswith("multipart/") else _body_fingerprint(request)
    elif RUNS_CREATE_PATH.match(request.path) and settings.RETRY_MATCH_WINDOW_SECONDS > 0:
        fingerprint = _body_fingerprint(request)
        key = f"retrymatch:{project.pk}:{fingerprint}"
        kind, ttl = "retry", settings.RETRY_MATCH_WINDOW_SECONDS
    else:
        return None
    client = limiter().client
    claim = Claim(key, kind, fingerprint, ttl)
    pending = json.dumps({"state": "pending", "fp": fingerprint})
    try:
        if kind == "retry" and not (retry_count.strip().isdigit() and int(retry_count) > 0):
            # A first attempt does the work, whatever an earlier call left: later retries match it.
            client.set(key, pending, ex=_pending_ttl())
            return claim
        deadline = time.monotonic() + settings.IDEMPOTENCY_WAIT_SECONDS
        while True:
            if client.set(key, pending, ex=_pending_ttl(), nx=True):
                return claim
            record = _read(client, key)
            if record is None:
                continue  # expired between the two calls: try to claim again
            _check_same_body(record, request, header_key)  # a different body is refused at once
            if record["state"] == "done":
                raise Replay(_replayed(record, kind, project))
            if time.monotonic() >= deadline:
                raise IdempotencyConflict(
                    "Another request with the same "
                    + (f"Idempotency-Key '{header_key}'" if header_key else "body")
                    + " is still being processed. Retry after it finishes.",
                    code="idempotency_request_in_progress",
                    headers={"x-should-retry": "true", "retry-after": "1", "retry-after-ms": "1000"})
            time.sleep(POLL_SECONDS)
    except redis.RedisError as exc:
        from apps.core.ratelimit import _failed_open

        _failed_open("idempotency", exc)
        return None


def _check_same_body(record: dict, request, header_key: str | None) -> None:
    if not header_key or record.get("fp") is None:
        return
    django_request = request._request
    if not hasattr(django_request, "idempotency_fingerprint"):  # parse a multipart body once
        django_request.idempotency_fingerprint = _body_fingerprint(request)
    if record["fp"] != django_request.idempotency_fingerprint:
        raise InvalidRequestError(
            f"Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{header_key}' if you meant to execute "
            "a different request.", param="Idempotency-Key", code="idempotency_key_reused")


def _replayed(record: dict, kind: str, project) -> HttpResponse:
    from apps.core.metrics import IDEMPOTENT_REPLAYS

    if record.get("interrupted"):
        raise IdempotencyConflict(
            "The first request with this Idempotency-Key streamed its answer and was cut off "
            "before the stream ended; the work it started goes on. List the thread's runs to "
            "find it.", code="idempotency_stream_interrupted", headers={"x-should-retry": "false"})
    IDEMPOTENT_REPLAYS.labels(project.pk, kind).inc()
    logger.info("replayed a stored %s answer for project %s", kind, project.pk)
    response = HttpResponse(base64.b64decode(record["body"]), status=record["status"],
                            content_type=record["content_type"])
    response["idempotent-replayed"] = "true"
    return response


def _store(claim: Claim, fingerprint: str | None, status: int, content_type: str, body: bytes,
           interrupted: bool = False) -> None:
    record = {"state": "done", "fp": fingerprint, "status": status, "content_type": content_type,
              "body": base64.b64encode(body).decode(), "interrupted": interrupted}
    try:
        limiter().client.set(claim.key, json.dumps(record), ex=claim.ttl)
    except redis.RedisError as exc:
        from apps.core.ratelimit import _failed_open

        _failed_open("idempotency", exc)


def release(claim: Claim) -> None:
    try:
        limiter().client.delete(claim.key)
    except redis.RedisError as exc:
        from apps.core.ratelimit import _failed_open

        _failed_open("idempotency", exc)


def finish(claim: Claim, request, response) -> None:
    """Keep the answer the claim's request produced (see the module's rules)."""
    status = response.status_code
    if status >= 500 or status in RETRYABLE_STATUSES:
        release(claim)
        return
    fingerprint = claim.fingerprint
    if fingerprint is None:
        if status >= 400:  # a refused upload may not have been parsed: nothing to compare later
            release(claim)
            return
        fingerprint = _body_fingerprint(request)
    content_type = response.get("Content-Type", "application/json")
    if not getattr(response, "streaming", False):
        if hasattr(response, "render"):
            response.render()
        _store(claim, fingerprint, status, content_type, response.content)
        return
    _tee_stream(claim, fingerprint, status, content_type, response)


def _tee_stream(claim: Claim, fingerprint: str, status: int, content_type: str, response) -> None:
    """Record a streamed answer as it goes out; kept whole when the stream ends, marked
    interrupted when the client left before the end."""
    from asgiref.sync import sync_to_async

    source = response.streaming_content

    async def recording():
        sent: list[bytes] = []
        size = 0
        complete = False
        try:
            async for chunk in source:
                if size <= MAX_STORED_BYTES:
                    sent.append(chunk)
                    size += len(chunk)
                yield chunk
            complete = True
        finally:
            interrupted = not complete or size > MAX_STORED_BYTES
            await sync_to_async(_store, thread_sensitive=False)(
                claim, fingerprint, status, content_type, b"" if interrupted else b"".join(sent),
                interrupted)

    response.streaming_content = recording()
