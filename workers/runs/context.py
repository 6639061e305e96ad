"""What the model sees: instructions, the thread's messages cut by the truncation strategy, and
this run's own tool exchanges, all within the prompt budget. Token counts are stored on thread
messages once and reused."""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings

from apps.files.models import File
from apps.runs.models import Run, RunStep
from apps.threads.images import sniff_image_type
from apps.threads.models import Message

IMAGE_TOKENS = 85
DEFAULT_CONTEXT_WINDOW = 128_000
CONTEXT_WINDOWS = {
    "gpt-3.5-turbo": 16_385,
    "gpt-4-": 128_000,
    "gpt-4": 8_192,
    "gpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-5": 400_000,
    "o1": 200_000,
    "o3": 200_000,
    "o4": 200_000,
}
MESSAGE_OVERHEAD_TOKENS = 3


class PromptTooLarge(Exception):
    """Even the newest message does not fit the prompt budget."""


@dataclass
class Context:
    messages: list[dict]
    thread_message_ids: list[str]
    estimated_tokens: int


def context_window(model: str) -> int:
    from workers.runs.model_calls import served_by_embedded_model

    if settings.LLM_CONTEXT_TOKENS and served_by_embedded_model(model):
        return settings.LLM_CONTEXT_TOKENS  # the window the local model really has
    best = ""
    for prefix in CONTEXT_WINDOWS:
        if model.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return CONTEXT_WINDOWS[best] if best else DEFAULT_CONTEXT_WINDOW


def _message_tokens(message: Message, model: str) -> int:
    if message.token_count is None:
        from workers.tokenization import count_tokens

        images = sum(1 for part in message.content if part["type"] != "text")
        message.token_count = count_tokens(message.text(), model) + images * IMAGE_TOKENS
        Message.objects.filter(pk=message.pk).update(token_count=message.token_count)
    return message.token_count + MESSAGE_OVERHEAD_TOKENS


class _DataUrlCache:
    """Encoded images by file id, least recently used dropped past `max_bytes`: a run calls the
    model once per tool round, and files never change, so each image is read and encoded once
    per worker process rather than once per call."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[str, str] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def get(self, file_id: str) -> str | None:
        with self.lock:
            url = self.entries.get(file_id)
            if url is not None:
                self.entries.move_to_end(file_id)
            return url

    def put(self, file_id: str, url: str) -> None:
        if len(url) > self.max_bytes:
            return
        with self.lock:
            if file_id in self.entries:
                return
            self.entries[file_id] = url
            self.size += len(url)
            while self.size > self.max_bytes:
                _, dropped = self.entries.popitem(last=False)
                self.size -= len(dropped)


_data_urls = _DataUrlCache(64 * 1024 * 1024)


def _image_data_url(project_id: str, file_id: str) -> str | None:
    # The project filter first, on every call: the cache only saves the read and the encoding.
    file = File.objects.filter(project_id=project_id, pk=file_id).only("content", "mime_type").first()
    if file is None:
        return None
    url = _data_urls.get(file_id)
    if url is None:
        with file.content.open("rb") as handle:
            data = handle.read()
        mime = sniff_image_type(data[:16]) or file.mime_type or "image/png"
        url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
        _data_urls.put(file_id, url)
    return url


def _chat_content(message: Message) -> str | list[dict]:
    parts = message.content
    if all(part["type"] == "text" for part in parts):
        return message.text()
    converted = []
    for part in parts:
        if part["type"] == "text":
            converted.append({"type": "text", "text": part["text"]["value"]})
        elif part["type"] == "image_url":
            converted.append({"type": "image_url", "image_url": {
                "url": part["image_url"]["url"], "detail": part["image_url"].get("detail", "auto")}})
        elif part["type"] == "image_file":
            url = _image_data_url(message.project_id, part["image_file"]["file_id"])
            if url:
                converted.append({"type": "image_url", "image_url": {
                    "url": url, "detail": part["image_file"].get("detail", "auto")}})
    return converted


def _select(messages: list[Message], run: Run, budget: int) -> list[Message]:
    strategy = run.truncation_strategy or {}
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        messages = messages[-int(strategy["last_messages"]):]
    if not messages:
        return []
    costs = [_message_tokens(message, run.model) for message in messages]
    if sum(costs) <= budget:
        return messages
    # Drop from the middle: keep the newest message and the opening one (it usually sets the
    # task), then as many of the newest others as still fit.
    if costs[-1] > budget:
        raise PromptTooLarge()
    last = len(messages) - 1
    kept = {last}
    used = costs[last]
    if last > 0 and used + costs[0] <= budget:
        kept.add(0)
        used += costs[0]
    for index in range(last - 1, 0, -1):
        if used + costs[index] > budget:
            break
        kept.add(index)
        used += costs[index]
    return [messages[index] for index in sorted(kept)]


def _tool_exchange(step: RunStep) -> list[dict]:
    """The assistant turn that called tools, then one tool message per call, as the model
    saw them (hosted tools' exact arguments and outputs are kept in `tool_io`)."""
    assistant_calls, results = [], []
    for call in step.step_details.get("tool_calls", []):
        if call["type"] == "function":
            name = call["function"]["name"]
            arguments = call["function"]["arguments"]
            output = call["function"].get("output")
        else:
            io = step.tool_io.get(call["id"], {})
            name = io.get("name", "python" if call["type"] == "code_interpreter" else "file_search")
            arguments = io.get("arguments", "{}")
            output = io.get("output")
        assistant_calls.append({"id": call["id"], "type": "function",
                                "function": {"name": name, "arguments": arguments}})
        results.append({"role": "tool", "tool_call_id": call["id"], "content": output or ""})
    return [{"role": "assistant", "content": None, "tool_calls": assistant_calls}, *results]


def _chat_tokens(entry: dict, model: str) -> int:
    """What one of the run's own chat entries costs, counted generously (names, arguments and a
    per-call overhead) so the budget errs on the side of sending less."""
    from workers.tokenization import count_tokens

    tokens = MESSAGE_OVERHEAD_TOKENS
    if isinstance(entry.get("content"), str):
        tokens += count_tokens(entry["content"], model)
    for call in entry.get("tool_calls") or []:
        function = call["function"]
        tokens += count_tokens(f"{function['name']}({function['arguments']})", model)
        tokens += MESSAGE_OVERHEAD_TOKENS
    return tokens


def _own_turns(run: Run) -> list[dict]:
    """This run's earlier turns: its assistant messages and its tool exchanges, in order."""
    chat: list[dict] = []
    own_messages = {m.pk: m for m in Message.objects.filter(run_id=run.pk, thread_id=run.thread_id)}
    for step in RunStep.objects.filter(run=run).exclude(status="in_progress").order_by("created_ns"):
        if step.type == "message_creation":
            message = own_messages.get(step.step_details["message_creation"]["message_id"])
            if message is not None and message.text():
                chat.append({"role": "assistant", "content": message.text()})
        else:
            chat.extend(_tool_exchange(step))
    return chat


def build_context(run: Run, prompt_budget: int, fixed_tokens: int) -> Context:
    """`prompt_budget` is what this completion may spend on the prompt; `fixed_tokens` is what
    instructions and tool definitions already take of it. The run's own earlier turns are sent
    whole (the model needs its tool results), so the thread's messages get what they leave;
    when not even they fit, the prompt is too large."""
    own = _own_turns(run)
    own_tokens = sum(_chat_tokens(entry, run.model) for entry in own)
    thread_budget = prompt_budget - fixed_tokens - own_tokens
    if thread_budget < 0:
        raise PromptTooLarge()
    thread_messages = list(
        Message.objects.filter(thread_id=run.thread_id)
        .exclude(run_id=run.pk)
        .exclude(status="in_progress")
        .order_by("created_ns", "pk")
    )
    selected = _select(thread_messages, run, thread_budget)
    chat: list[dict] = []
    if run.instructions:
        chat.append({"role": "system", "content": run.instructions})
    for message in selected:
        chat.append({"role": message.role, "content": _chat_content(message)})
    chat.extend(own)
    estimated = fixed_tokens + own_tokens + sum(_message_tokens(m, run.model) for m in selected)
    return Context(messages=chat, thread_message_ids=[m.pk for m in selected],
                   estimated_tokens=estimated)
