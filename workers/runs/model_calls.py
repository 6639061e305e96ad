"""Calls to the upstream model through the `openai` client: streamed, retried with backoff on
429/5xx/timeouts within a time budget, cancellable at any moment (the call runs in a reader
thread so a slow upstream never blocks a cancel)."""

from __future__ import annotations

import contextvars
import json
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from itertools import chain

import openai
from django.conf import settings
from openai._constants import RAW_RESPONSE_HEADER

from apps.core import metrics, tracing
from ops.embedded_models import OPENAI_BASE_URL

_END = object()


class UpstreamError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StreamEndedEarly(Exception):
    """The upstream closed the stream before saying why it finished (no finish_reason)."""


class Stopped(Exception):
    """The caller asked to stop (cancel or expiry) while waiting on the model."""


@dataclass
class ToolCallOut:
    index: int
    id: str
    name: str
    # Fragments are kept apart and joined when read: growing one string by `+=` copies it
    # for every fragment, which is quadratic in the length of the arguments.
    fragments: list[str] = field(default_factory=list)

    @property
    def arguments(self) -> str:
        if len(self.fragments) > 1:
            self.fragments[:] = ["".join(self.fragments)]
        return self.fragments[0] if self.fragments else ""


@dataclass
class Completion:
    text: str = ""
    tool_calls: list[ToolCallOut] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class StreamCallbacks:
    on_text: Callable[[str], None]
    on_tool_call: Callable[[ToolCallOut, str], None]  # (call so far, new argument fragment)
    should_stop: Callable[[], bool]
    # Given a function that wakes the waiting stream, or None to take it back: whoever learns
    # of a stop (the run watch) calls it, so a run waiting on a quiet model is not woken every
    # STOP_CHECK_SECONDS to ask. Without it, should_stop is polled at that interval.
    set_waker: Callable[[Callable[[], None] | None], None] | None = None


@dataclass(frozen=True)
class Backend:
    base_url: str
    api_key: str
    setting: str  # what the operator changes to point this model elsewhere


def _routes() -> list[tuple[str, str, str]]:
    """LLM_ROUTES="prefix=base_url|api_key;prefix2=base_url2" sends models by name prefix. A
    route without a key gets none: the main LLM_API_KEY never leaves for another backend. The
    target `embedded` is the embedded model server."""
    routes = []
    for item in filter(None, (part.strip() for part in settings.LLM_ROUTES.split(";"))):
        prefix, _, target = item.partition("=")
        base_url, _, api_key = target.partition("|")
        base_url = base_url.strip()
        if base_url == "embedded":
            base_url = settings.LLM_EMBEDDED_URL
        routes.append((prefix.strip(), base_url, api_key.strip()))
    return routes


def backend_for(model: str) -> Backend:
    for prefix, base_url, api_key in _routes():
        if model.startswith(prefix):
            return Backend(base_url, api_key, f"LLM_ROUTES ({prefix}=)")
    if settings.LLM_EMBEDDED_URL and settings.LLM_BASE_URL == settings.LLM_EMBEDDED_URL:
        return Backend(settings.LLM_BASE_URL, "", "the embedded model server (DATA_DIR/logs/"
                       "models.log), or set LLM_BASE_URL")
    return Backend(settings.LLM_BASE_URL, settings.LLM_API_KEY, "LLM_BASE_URL")


def served_by_embedded_model(model: str) -> bool:
    return bool(settings.LLM_EMBEDDED_URL) and backend_for(model).base_url == settings.LLM_EMBEDDED_URL


def backend_problem(backend: Backend) -> str | None:
    """Why this backend cannot work whatever is sent to it, known without calling it."""
    if not backend.base_url:
        return (f"No model backend is configured ({backend.setting} is empty and the embedded "
                "model is not running).")
    if backend.base_url.rstrip("/") == OPENAI_BASE_URL and not backend.api_key:
        if backend.setting.startswith("LLM_ROUTES"):
            return (f"{backend.setting} sends this model to OpenAI's API ({OPENAI_BASE_URL}) with "
                    "no key: give the route one (prefix=url|key).")
        return (f"{backend.setting} is OpenAI's API ({OPENAI_BASE_URL}) but LLM_API_KEY is not "
                "set: set LLM_API_KEY, point LLM_BASE_URL at another backend, or unset both to "
                "use the embedded model.")
    return None


def _refused(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or "Connection refused" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


@cache
def _client(base_url: str, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=api_key or "none", max_retries=0,
                         timeout=settings.LLM_TIMEOUT)


def client_for(model: str) -> openai.OpenAI:
    backend = backend_for(model)
    return _client(backend.base_url, backend.api_key)


def _retry_delay(error: openai.APIStatusError | None, attempt: int) -> float:
    if error is not None:
        headers = error.response.headers
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            value = headers.get(name)
            if value:
                try:
                    return max(0.0, float(value) * scale)
                except ValueError:
                    pass
    return min(8.0, 0.5 * 2**attempt) * (0.75 + random.random() / 2)


@contextmanager
def _streamed_reply(client: openai.OpenAI, request: dict) -> Iterator[openai.APIResponse]:
    """The raw streamed response to a chat completion request, closed on the way out. Posted
    as it is rather than through `chat.completions.create`, whose type-driven transform of the
    request (a third of the SDK's CPU per call, and more with each message) changes nothing in
    one built of plain JSON values; the SDK's errors are raised as they would be."""
    body = {name: value for name, value in request.items() if name != "extra_headers"}
    headers = {**(request.get("extra_headers") or {}), RAW_RESPONSE_HEADER: "stream"}
    response = client.post("/chat/completions", body=body, cast_to=object, options={"headers": headers})
    try:
        yield response
    finally:
        response.close()


def _read_stream(request: dict, model: str, sink: queue.Queue, holder: dict) -> None:
    try:
        with tracing.upstream_call(model, backend_for(model).base_url, request) as request, \
                _streamed_reply(client_for(model), request) as response:
            holder["stream"] = response
            for chunk in _chunks(response):
                sink.put(chunk)
        sink.put(_END)
    except BaseException as exc:  # noqa: BLE001 (handed to the consuming thread, which decides)
        sink.put(exc)


def _chunks(response) -> Iterator[dict]:
    """The completion chunks of the SSE body as plain dicts, read as the SDK's own stream reads
    them (an `error` in a chunk raises APIError). The SDK's typed chunk objects cost a runs
    worker 40% of its time per chunk."""
    data: list[str] = []
    for line in chain(response.iter_lines(), [""]):  # a last event may lack its blank line
        if line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
            continue
        if line or not data:
            continue  # `event:`, `id:` and comment lines, or a blank line between events
        payload, data = "\n".join(data), []
        if payload.startswith("[DONE]"):
            return
        chunk = json.loads(payload)
        if isinstance(chunk, dict) and chunk.get("error"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else None
            raise openai.APIError(message if isinstance(message, str) and message
                                  else "An error occurred during streaming",
                                  request=response.http_request, body=error)
        yield chunk


def _classify(exc: BaseException, model: str = "") -> tuple[bool, UpstreamError]:
    """(retryable, the error to fail the run with when retries are over)."""
    if isinstance(exc, openai.APIConnectionError) and _refused(exc):
        # Nothing listens there: retrying for the whole budget would only hide the setting.
        backend = backend_for(model)
        return False, UpstreamError("server_error", f"Could not reach the model provider at "
                                    f"{backend.base_url}: the connection was refused. Check "
                                    f"{backend.setting}.")
    if isinstance(exc, openai.RateLimitError):
        return True, UpstreamError("rate_limit_exceeded",
                                   f"The model provider is rate limiting requests: {exc.message}")
    if isinstance(exc, openai.APITimeoutError):
        return True, UpstreamError("server_error", "The model provider timed out.")
    if isinstance(exc, openai.APIConnectionError):
        return True, UpstreamError("server_error", f"Could not reach the model provider: {exc}")
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return True, UpstreamError("server_error",
                                   f"The model provider failed with {exc.status_code}: {exc.message}")
    if isinstance(exc, openai.APIStatusError) and exc.status_code in (408, 409):
        return True, UpstreamError("server_error", f"The model provider answered {exc.status_code}.")
    if isinstance(exc, StreamEndedEarly):
        return True, UpstreamError("server_error", "The model provider's stream ended unexpectedly.")
    if isinstance(exc, openai.APIStatusError):
        return False, UpstreamError("invalid_prompt",
                                    f"The model provider rejected the request: {exc.message}")
    return False, UpstreamError("server_error", f"The model call failed: {exc}")


def stream_completion(request: dict, model: str, callbacks: StreamCallbacks,
                      project_id: str | None = None, token_limit: int | None = None) -> Completion:
    """One completion, streamed into `callbacks`; retried while nothing has been emitted.
    With `project_id`, the project's token quota (`token_limit` when already known) is checked
    first and charged after."""
    problem = backend_problem(backend_for(model))
    if problem is not None:
        raise UpstreamError("server_error", problem)
    quota = _check_token_quota(project_id, model, token_limit)
    result = _stream_with_retries(request, model, callbacks)
    if quota:
        from apps.core.quotas import record_tokens

        record_tokens(project_id, model, result.prompt_tokens + result.completion_tokens)
    return result


def _check_token_quota(project_id: str | None, model: str, limit: int | None) -> int:
    if project_id is None:
        return 0
    from apps.core.quotas import TokenQuotaExceeded, check_tokens

    try:
        return check_tokens(project_id, model, limit)
    except TokenQuotaExceeded as exceeded:
        raise UpstreamError("rate_limit_exceeded", exceeded.message) from None


def _stream_with_retries(request: dict, model: str, callbacks: StreamCallbacks) -> Completion:
    budget_ends = time.monotonic() + settings.LLM_RETRY_BUDGET_SECONDS
    attempt = 0
    while True:
        result = Completion()
        emitted = False
        try:
            metrics.UPSTREAM_REQUESTS.labels(model).inc()
            _consume(request, model, callbacks, result)
            return result
        except _EmittedFailure as failure:
            emitted = True
            exc = failure.cause
        except _Failure as failure:
            exc = failure.cause
        metrics.upstream_failed(exc)
        retryable, error = _classify(exc, model)
        delay = _retry_delay(exc if isinstance(exc, openai.APIStatusError) else None, attempt)
        if emitted or not retryable or time.monotonic() + delay > budget_ends:
            raise error from exc
        _sleep_unless_stopped(delay, callbacks.should_stop)
        attempt += 1


class _Failure(Exception):
    def __init__(self, cause: BaseException) -> None:
        self.cause = cause


class _EmittedFailure(_Failure):
    pass


def _sleep_unless_stopped(seconds: float, should_stop: Callable[[], bool]) -> None:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if should_stop():
            raise Stopped()
        time.sleep(min(0.1, max(0.0, ends - time.monotonic())))


# How often a run waiting on its stream checks whether to stop: each wake-up of each waiting
# run costs the process CPU, and a worker carries many of them. A run that is woken when told
# to stop checks only for what nobody tells it (its expiry, which the sweeper also signals).
STOP_CHECK_SECONDS = 0.2
WOKEN_CHECK_SECONDS = 5.0
_WAKE = object()


def _consume(request: dict, model: str, callbacks: StreamCallbacks, result: Completion) -> None:
    sink: queue.Queue = queue.Queue()
    holder: dict = {}
    reader = threading.Thread(target=contextvars.copy_context().run, daemon=True,  # the trace
                              args=(_read_stream, request, model, sink, holder))
    reader.start()
    check_every = STOP_CHECK_SECONDS
    if callbacks.set_waker is not None:
        callbacks.set_waker(lambda: sink.put(_WAKE))
        check_every = WOKEN_CHECK_SECONDS
    try:
        _relay_chunks(sink, holder, callbacks, result, check_every)
    finally:
        if callbacks.set_waker is not None:
            callbacks.set_waker(None)


def _relay_chunks(sink: queue.Queue, holder: dict, callbacks: StreamCallbacks, result: Completion,
                  check_every: float) -> None:
    emitted = False
    calls: dict[int, ToolCallOut] = {}
    next_check = 0.0
    while True:
        now = time.monotonic()
        item = None
        if now >= next_check:
            next_check = now + check_every
        else:
            try:
                item = sink.get(timeout=next_check - now)
            except queue.Empty:
                continue
        if item is None or item is _WAKE:
            if callbacks.should_stop():
                stream = holder.get("stream")
                if stream is not None:
                    threading.Thread(target=stream.close, daemon=True).start()
                raise Stopped()
            continue
        if item is _END:
            if result.finish_reason is None:
                raise (_EmittedFailure if emitted else _Failure)(StreamEndedEarly())
            break
        if isinstance(item, BaseException):
            raise (_EmittedFailure if emitted else _Failure)(item)
        usage = item.get("usage")
        if usage:
            result.prompt_tokens = usage.get("prompt_tokens") or 0
            result.completion_tokens = usage.get("completion_tokens") or 0
        for choice in item.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                emitted = True
                result.text += content
                callbacks.on_text(content)
            for call_delta in delta.get("tool_calls") or ():
                emitted = True
                function = call_delta.get("function") or {}
                call = calls.get(call_delta.get("index"))
                if call is None:
                    call = ToolCallOut(index=len(calls), id=call_delta.get("id") or "",
                                       name=function.get("name") or "")
                    calls[call_delta.get("index")] = call
                    result.tool_calls.append(call)
                fragment = function.get("arguments") or ""
                call.fragments.append(fragment)
                callbacks.on_tool_call(call, fragment)
            if choice.get("finish_reason"):
                result.finish_reason = choice["finish_reason"]
