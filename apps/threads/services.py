"""Threads and messages. Views validate the request and pass its fields; a message body is
a CreateMessageRequest's fields (also a thread's `messages` and a run's `additional_messages`)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from apps.core.errors import InvalidRequestError, not_found
from apps.core.fields import UNSET
from apps.core.models import Project
from apps.core.queue import CLOSE_SANDBOX_TASK, enqueue
from apps.files.services import require_file
from apps.runs.models import Run, active_run_id
from apps.threads.images import check_image_file, check_image_url
from apps.threads.models import Message, Thread
from apps.vector_stores.tool_resources import attach_to_thread_store, normalize_tool_resources


def get_thread(project: Project, thread_id: str, *, for_update: bool = False) -> Thread:
    thread = Thread.objects.owned(project, thread_id, for_update=for_update)
    if thread is None:
        raise not_found("thread", thread_id)
    return thread


def get_message(project: Project, thread_id: str, message_id: str) -> Message:
    message = Message.objects.restrict(project).filter(thread_id=thread_id, pk=message_id).first()
    if message is None:
        get_thread(project, thread_id)
        raise not_found("message", message_id)
    return message


def _content_parts(project: Project, content, param: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    parts = []
    for index, part in enumerate(content):
        kind = part["type"]
        if kind == "text":
            parts.append({"type": "text", "text": {"value": part["text"], "annotations": []}})
        elif kind == "image_file":
            image = part["image_file"]
            check_image_file(project, image["file_id"], f"{param}[{index}].image_file.file_id")
            parts.append({"type": "image_file", "image_file": {
                "file_id": image["file_id"], "detail": image.get("detail") or "auto"}})
        else:
            image = part["image_url"]
            check_image_url(image["url"], f"{param}[{index}].image_url.url")
            parts.append({"type": "image_url", "image_url": {
                "url": image["url"], "detail": image.get("detail") or "auto"}})
    return parts


def _attachments(project: Project, attachments, param: str) -> list[dict] | None:
    if attachments is None:
        return None
    for index, attachment in enumerate(attachments):
        for key in ("file_id", "tools"):
            if key not in attachment:
                raise InvalidRequestError(
                    f"Missing required parameter: '{param}[{index}].{key}'.",
                    param=f"{param}[{index}].{key}", code="missing_required_parameter",
                )
        require_file(project, attachment["file_id"], f"{param}[{index}].file_id")
    return [{"file_id": a["file_id"], "tools": a["tools"]} for a in attachments]


def build_message(project: Project, thread: Thread, body: dict, param: str = "") -> Message:
    """An unsaved message from a CreateMessageRequest's fields (already schema-validated)."""
    prefix = f"{param}." if param else ""
    message = Message(
        project=project,
        thread=thread,
        role=body["role"],
        content=_content_parts(project, body["content"], f"{prefix}content"),
        attachments=_attachments(project, body.get("attachments"), f"{prefix}attachments"),
        metadata=body.get("metadata") or {},
        status="completed",
    )
    return message


MAX_MESSAGES_PER_THREAD = 100_000


def _check_room(thread: Thread, adding: int) -> None:
    """OpenAI's documented limit of 100,000 messages per thread."""
    if adding and Message.objects.filter(thread=thread).count() + adding > MAX_MESSAGES_PER_THREAD:
        raise InvalidRequestError(
            f"Thread {thread.pk} already has the maximum of {MAX_MESSAGES_PER_THREAD} messages.",
            code="thread_message_limit_exceeded")


def _add_messages(project: Project, thread: Thread, bodies: Iterable[dict], param: str) -> None:
    bodies = list(bodies)
    _check_room(thread, len(bodies))
    created = []
    for index, body in enumerate(bodies):
        message = build_message(project, thread, body, f"{param}[{index}]")
        message.save()
        created.append(message)
    _attach_file_search_files(project, thread, created)


def _attach_file_search_files(project: Project, thread: Thread, messages: list[Message]) -> None:
    file_ids = [
        attachment["file_id"]
        for message in messages
        for attachment in message.attachments or []
        if any(tool.get("type") == "file_search" for tool in attachment["tools"])
    ]
    if file_ids:
        attach_to_thread_store(project, thread, file_ids)


def create_thread(project: Project, *, messages: list[dict] | None = None,
                  metadata: dict | None = None, tool_resources: dict | None = None) -> Thread:
    with transaction.atomic():
        thread = Thread(project=project, metadata=metadata or {})
        thread.tool_resources = normalize_tool_resources(project, tool_resources, owner_kind="thread")
        thread.save()
        _add_messages(project, thread, messages or [], "messages")
    return thread


def modify_thread(project: Project, thread_id: str, *, metadata: dict | None = UNSET,
                  tool_resources: dict | None = UNSET) -> Thread:
    with transaction.atomic():
        thread = get_thread(project, thread_id, for_update=True)
        if metadata is not UNSET:
            thread.metadata = metadata or {}
        if tool_resources is not UNSET:
            thread.tool_resources = normalize_tool_resources(
                project, tool_resources, existing=thread.tool_resources, owner_kind="thread",
            )
        thread.save()
    return thread


def delete_thread(project: Project, thread_id: str) -> str:
    with transaction.atomic():
        thread = get_thread(project, thread_id, for_update=True)
        # A worker adds steps, messages and model-call records under its run's row lock: taking
        # those locks first means the cascade below sees every row a worker committed, and a
        # worker writing later finds its run gone (never a foreign-key error here).
        list(Run.objects.select_for_update().filter(thread_id=thread.pk).values_list("pk", flat=True))
        thread_pk = thread.pk
        thread.delete()
    enqueue(CLOSE_SANDBOX_TASK, thread_pk)
    return thread_id


MESSAGE_FIELDS = ("role", "content", "attachments", "metadata")


def create_message(project: Project, thread_id: str, *, role: str, content: str | list[dict],
                   attachments: list[dict] | None = None, metadata: dict | None = None) -> Message:
    body = {"role": role, "content": content, "attachments": attachments, "metadata": metadata}
    with transaction.atomic():
        thread = get_thread(project, thread_id, for_update=True)
        run_id = active_run_id(thread.pk)
        if run_id:
            raise InvalidRequestError(
                f"Can't add messages to {thread.pk} while a run {run_id} is active."
            )
        _check_room(thread, 1)
        message = build_message(project, thread, body)
        message.save()
        _attach_file_search_files(project, thread, [message])
    return message


def add_run_messages(project: Project, thread: Thread, bodies: list[dict]) -> None:
    """`additional_messages` of a run, added inside the caller's transaction."""
    _add_messages(project, thread, bodies, "additional_messages")


def modify_message(project: Project, thread_id: str, message_id: str, *,
                   metadata: dict | None = UNSET) -> Message:
    message = get_message(project, thread_id, message_id)
    if metadata is not UNSET:
        message.metadata = metadata or {}
        message.save(update_fields=["metadata"])
    return message


def delete_message(project: Project, thread_id: str, message_id: str) -> str:
    get_message(project, thread_id, message_id).delete()
    return message_id


def list_messages(project: Project, thread_id: str, run_id: str | None):
    thread = get_thread(project, thread_id)
    queryset = Message.objects.filter(thread=thread)
    if run_id:
        queryset = queryset.filter(run_id=run_id)
    return queryset


SEARCH_MAX_LENGTH = 256


def list_threads(project: Project, search: str | None = None) -> QuerySet[Thread]:
    """The project's threads, for `GET /v1/threads` (our extension: OpenAI has no such list).
    `search` matches, case-insensitively, the metadata (keys and values) or the text of the
    thread's first message."""
    queryset = Thread.objects.restrict(project)
    search = (search or "").strip()
    if not search:
        return queryset
    if len(search) > SEARCH_MAX_LENGTH:
        raise InvalidRequestError(
            f"Invalid 'search': string too long. Expected a string with maximum length "
            f"{SEARCH_MAX_LENGTH}, but got a string with length {len(search)} instead.",
            param="search", code="string_above_max_length")
    first_text = (Message.objects.filter(thread=OuterRef("pk")).order_by("created_ns", "pk")
                  .values(text=KT("content__0__text__value"))[:1])
    return (queryset.annotate(first_text=Subquery(first_text, output_field=TextField()),
                              metadata_text=Cast("metadata", TextField()))
            .filter(Q(first_text__icontains=search) | Q(metadata_text__icontains=search)))

