from apps.threads.models import Message, Thread


def render_thread(thread: Thread) -> dict:
    return {
        "id": thread.id,
        "object": "thread",
        "created_at": thread.created_at,
        "tool_resources": thread.tool_resources,
        "metadata": thread.metadata,
    }


def render_message(message: Message) -> dict:
    return {
        "id": message.id,
        "object": "thread.message",
        "created_at": message.created_at,
        "thread_id": message.thread_id,
        "status": message.status,
        "incomplete_details": message.incomplete_details,
        "completed_at": message.completed_at,
        "incomplete_at": message.incomplete_at,
        "role": message.role,
        "content": message.content,
        "assistant_id": message.assistant_id,
        "run_id": message.run_id,
        "attachments": message.attachments if message.attachments is not None else [],
        "metadata": message.metadata,
    }
