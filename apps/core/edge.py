"""The web edge: a pure-ASGI guard in front of Django that bounds every request body while it
streams in. Django's ASGI handler reads a whole body (to memory, then a temp file) before any
view or authentication runs, and DRF treats a body without Content-Length as empty; so here,
before Django sees a byte:

- a malformed Content-Length, or one beside Transfer-Encoding, is a 400;
- under /v1 a request that carries a body past 64 KiB (or a chunked one) must first name a live
  API key (401 otherwise), so an unauthenticated caller never makes the server read its body;
- a declared length over the limit is a 413 at once, without reading;
- a chunked body is read up to the limit (spooled to disk past 1 MiB) and handed to Django with
  its real Content-Length, or refused with a 413 as soon as it passes the limit.

Limits: MAX_JSON_BODY_BYTES for every body, FILE_UPLOAD_MAX_BYTES plus MULTIPART_OVERHEAD_BYTES
for `POST /v1/files`. Refusals leave in OpenAI's envelope and close the connection, so the rest
of a huge body is never read."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.conf import settings

from apps.core.errors import APIError, InvalidRequestError, PayloadTooLargeError

SMALL_BODY_BYTES = 65536

Scope = dict
Message = dict
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Multipart framing around the file part (boundaries, part headers, `purpose`, `expires_after`)
# is small; an upload body may exceed the file limit by this much.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
SPOOL_IN_MEMORY_BYTES = 1024 * 1024
REPLAY_CHUNK_BYTES = 64 * 1024


def body_limit(method: str, path: str) -> tuple[int, int, str]:
    """(bytes a body may carry, the limit to name, the setting that sets it)."""
    if method == "POST" and path.rstrip("/") == "/v1/files":
        return (settings.FILE_UPLOAD_MAX_BYTES + MULTIPART_OVERHEAD_BYTES,
                settings.FILE_UPLOAD_MAX_BYTES, "FILE_UPLOAD_MAX_BYTES")
    return settings.MAX_JSON_BODY_BYTES, settings.MAX_JSON_BODY_BYTES, "MAX_JSON_BODY_BYTES"


def too_large(limit: int, setting: str, received: int, declared: bool) -> PayloadTooLargeError:
    seen = f"{received} bytes declared" if declared else f"more than {received} bytes read"
    return PayloadTooLargeError(
        f"Maximum content size limit ({limit}) exceeded ({seen}). The server's {setting} "
        "sets this limit.", param="file" if setting == "FILE_UPLOAD_MAX_BYTES" else None,
        code="request_too_large")


def _declared_length(headers: list[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """(Content-Length, chunked), or a 400 for framing a server must not guess about."""
    lengths = [value for name, value in headers if name == b"content-length"]
    chunked = any(name == b"transfer-encoding" and b"chunked" in value.lower()
                  for name, value in headers)
    if len(lengths) > 1 and len(set(lengths)) > 1:
        raise InvalidRequestError("Invalid 'Content-Length' header: given more than once, with "
                                  "different values.", param="Content-Length", code="invalid_value")
    if lengths and chunked:
        raise InvalidRequestError("Invalid 'Content-Length' header: a request may not carry both "
                                  "Content-Length and Transfer-Encoding.", param="Content-Length",
                                  code="invalid_value")
    if not lengths:
        return None, chunked
    raw = lengths[0].strip()
    if not raw.isdigit() or len(raw) > 19:
        shown = raw[:40].decode("latin-1")
        raise InvalidRequestError(f"Invalid 'Content-Length' header: expected a non-negative "
                                  f"integer, but got '{shown}' instead.", param="Content-Length",
                                  code="invalid_value")
    return int(raw), False


def _check_api_key(header: str) -> None:
    from django.db import connection

    from apps.core.auth import api_key_for_header

    try:
        api_key_for_header(header)
    finally:
        # This runs on a plain executor thread, outside Django's request cycle: hand the
        # pooled connection back now rather than when the thread happens to die.
        connection.close()


async def send_error(send: Send, error: APIError) -> None:
    body = json.dumps(error.envelope()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"x-request-id", f"req_{uuid.uuid4().hex}".encode()), (b"connection", b"close")]
    if error.status_code == 401:
        headers.append((b"www-authenticate", b'Bearer realm="api"'))
    headers += [(name.lower().encode(), value.encode()) for name, value in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # Only the edge's own checks may answer here: once Django has the request, it answers.
        spool = None
        try:
            scope, spool = await self._admit(scope, receive)
        except APIError as error:
            await send_error(send, error)
            return
        except _Disconnected:
            return
        if spool is None:
            return await self.app(scope, receive, send)
        with spool:
            await self.app(scope, _replay(spool, receive), send)

    async def _admit(self, scope: Scope, receive: Receive):
        """(the scope Django gets, the spooled body of a chunked request or None), or an
        APIError to answer with."""
        headers = scope["headers"]
        declared, chunked = _declared_length(headers)
        if not chunked and not declared:
            return scope, None
        # A small declared body is already in uvicorn's buffer (it reads up to its 64 KiB high
        # water mark unasked), so checking the key here would spare nothing: DRF checks it
        # before the body is parsed, and one lookup a request is saved.
        if scope["path"].startswith("/v1/") and (chunked or declared > SMALL_BODY_BYTES):
            authorization = next((value.decode("latin-1") for name, value in headers
                                  if name == b"authorization"), "")
            await sync_to_async(_check_api_key, thread_sensitive=False)(authorization)
        limit, named, setting = body_limit(scope["method"], scope["path"])
        if declared is not None:
            if declared > limit:
                raise too_large(named, setting, declared, declared=True)
            # uvicorn holds the body to its declared length: nothing more can arrive.
            return scope, None
        spool, received = await _read_chunked(receive, limit, named, setting)
        headers = [(name, value) for name, value in headers if name != b"transfer-encoding"]
        headers.append((b"content-length", str(received).encode()))
        return {**scope, "headers": headers}, spool


class _Disconnected(Exception):
    """The client went away while its chunked body was being read."""


async def _read_chunked(receive: Receive, limit: int, named: int, setting: str):
    """Spool a chunked body, stopping at the first byte past `limit`."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115 (returned)
    try:
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise too_large(named, setting, limit, declared=False)
            spool.write(chunk)
            more = message.get("more_body", False)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, received


def _replay(spool, receive: Receive) -> Receive:
    """The spooled body as ASGI messages, then the real channel (Django listens on it for the
    client's disconnect)."""
    done = False

    async def replayed() -> Message:
        nonlocal done
        if done:
            return await receive()
        chunk = spool.read(REPLAY_CHUNK_BYTES)
        done = len(chunk) < REPLAY_CHUNK_BYTES
        return {"type": "http.request", "body": chunk, "more_body": not done}

    return replayed
