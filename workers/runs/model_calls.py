"""Calls to the upstream model through the `openai` client: streamed, retried with backoff on
429/5xx/timeouts within a time budget, cancellable at any moment (the call runs in a reader
thread so a slow upstream never blocks a cancel)."""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import openai
from django.conf import settings

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


def _routes() -> list[tuple[str, str, str]]:
    """LLM_ROUTES="prefix=base_url|api_key;prefix2=base_url2" sends models by name prefix. A
    route without a key gets none: the main LLM_API_KEY never leaves for another backend."""
    routes = []
    for item in filter(None, (part.strip() for part in settings.LLM_ROUTES.split(";"))):
        prefix, _, target = item.partition("=")
        base_url, _, api_key = target.partition("|")
        routes.append((prefix.strip(), base_url.strip(), api_key.strip()))
    return routes


@cache
def _client(base_url: str, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=api_key or "none", max_retries=0,
                         timeout=settings.LLM_TIMEOUT)


def client_for(model: str) -> openai.OpenAI:
    for prefix, base_url, api_key in _routes():
        if model.startswith(prefix):
            return _client(base_url, api_key)
    return _client(settings.LLM_BASE_URL, settings.LLM_API_KEY)


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


def _read_stream(request: dict, model: str, sink: queue.Queue, holder: dict) -> None:
    try:
        stream = client_for(model).chat.completions.create(**request)
        holder["stream"] = stream
        for chunk in stream:
            sink.put(chunk)
        sink.put(_END)
    except BaseException as exc:  # noqa: BLE001 (handed to the consuming thread, which decides)
        sink.put(exc)


def _classify(exc: BaseException) -> tuple[bool, UpstreamError]:
    """(retryable, the error to fail the run with when retries are over)."""
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


def stream_completion(request: dict, model: str, callbacks: StreamCallbacks) -> Completion:
    """One completion, streamed into `callbacks`; retried while nothing has been emitted."""
    budget_ends = time.monotonic() + settings.LLM_RETRY_BUDGET_SECONDS
    attempt = 0
    while True:
        result = Completion()
        emitted = False
        try:
            _consume(request, model, callbacks, result)
            return result
        except _EmittedFailure as failure:
            emitted = True
            exc = failure.cause
        except _Failure as failure:
            exc = failure.cause
        retryable, error = _classify(exc)
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


def _consume(request: dict, model: str, callbacks: StreamCallbacks, result: Completion) -> None:
    sink: queue.Queue = queue.Queue()
    holder: dict = {}
    reader = threading.Thread(target=_read_stream, args=(request, model, sink, holder), daemon=True)
    reader.start()
    emitted = False
    calls: dict[int, ToolCallOut] = {}
    next_check = 0.0
    while True:
        now = time.monotonic()
        if now >= next_check:
            next_check = now + 0.1
            if callbacks.should_stop():
                stream = holder.get("stream")
                if stream is not None:
                    threading.Thread(target=stream.close, daemon=True).start()
                raise Stopped()
        try:
            item = sink.get(timeout=0.05)
        except queue.Empty:
            continue
        if item is _END:
            if result.finish_reason is None:
                raise (_EmittedFailure if emitted else _Failure)(StreamEndedEarly())
            break
        if isinstance(item, BaseException):
            raise (_EmittedFailure if emitted else _Failure)(item)
        if item.usage is not None:
            result.prompt_tokens = item.usage.prompt_tokens or 0
            result.completion_tokens = item.usage.completion_tokens or 0
        for choice in item.choices:
            delta = choice.delta
            if delta is not None and delta.content:
                emitted = True
                result.text += delta.content
                callbacks.on_text(delta.content)
            for call_delta in (delta.tool_calls if delta is not None else None) or []:
                emitted = True
                call = calls.get(call_delta.index)
                if call is None:
                    call = ToolCallOut(index=len(calls), id=call_delta.id or "",
                                       name=(call_delta.function.name if call_delta.function else "") or "")
                    calls[call_delta.index] = call
                    result.tool_calls.append(call)
                fragment = (call_delta.function.arguments if call_delta.function else "") or ""
                call.fragments.append(fragment)
                callbacks.on_tool_call(call, fragment)
            if choice.finish_reason:
                result.finish_reason = choice.finish_reason
