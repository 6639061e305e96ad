from apps.assistants.models import Assistant


def render_assistant(assistant: Assistant) -> dict:
    return {
        "id": assistant.id,
        "object": "assistant",
        "created_at": assistant.created_at,
        "name": assistant.name,
        "description": assistant.description,
        "model": assistant.model,
        "instructions": assistant.instructions,
        "tools": assistant.tools,
        "tool_resources": assistant.tool_resources,
        "metadata": assistant.metadata,
        "temperature": 1.0 if assistant.temperature is None else assistant.temperature,
        "top_p": 1.0 if assistant.top_p is None else assistant.top_p,
        "response_format": assistant.response_format or "auto",
        "reasoning_effort": assistant.reasoning_effort,
    }
