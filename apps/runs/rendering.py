from apps.runs.models import Run, RunStep

FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def render_run(run: Run) -> dict:
    return {
        "id": run.id,
        "object": "thread.run",
        "created_at": run.created_at,
        "assistant_id": run.assistant_id,
        "thread_id": run.thread_id,
        "status": run.status,
        "started_at": run.started_at,
        "expires_at": run.expires_at,
        "cancelled_at": run.cancelled_at,
        "failed_at": run.failed_at,
        "completed_at": run.completed_at,
        "required_action": run.required_action,
        "last_error": run.last_error,
        "model": run.model,
        "instructions": run.instructions,
        "tools": run.tools,
        "tool_resources": run.tool_resources,
        "metadata": run.metadata,
        "temperature": 1.0 if run.temperature is None else run.temperature,
        "top_p": 1.0 if run.top_p is None else run.top_p,
        "reasoning_effort": run.reasoning_effort,
        "max_completion_tokens": run.max_completion_tokens,
        "max_prompt_tokens": run.max_prompt_tokens,
        "truncation_strategy": run.truncation_strategy,
        "incomplete_details": run.incomplete_details,
        "usage": run.usage,
        "response_format": run.response_format if run.response_format is not None else "auto",
        "tool_choice": run.tool_choice if run.tool_choice is not None else "auto",
        "parallel_tool_calls": run.parallel_tool_calls,
    }


def _without_search_content(details: dict) -> dict:
    calls = []
    for call in details.get("tool_calls", []):
        if call.get("type") == "file_search" and call["file_search"].get("results"):
            results = [
                {key: value for key, value in result.items() if key != "content"}
                for result in call["file_search"]["results"]
            ]
            call = {**call, "file_search": {**call["file_search"], "results": results}}
        calls.append(call)
    return {**details, "tool_calls": calls}


def render_step(step: RunStep, include: list[str] | tuple[str, ...] = ()) -> dict:
    details = step.step_details
    if details.get("type") == "tool_calls" and FILE_SEARCH_CONTENT not in include:
        details = _without_search_content(details)
    return {
        "id": step.id,
        "object": "thread.run.step",
        "created_at": step.created_at,
        "run_id": step.run_id,
        "assistant_id": step.assistant_id,
        "thread_id": step.thread_id,
        "type": step.type,
        "status": step.status,
        "cancelled_at": step.cancelled_at,
        "completed_at": step.completed_at,
        "expired_at": step.expired_at,
        "failed_at": step.failed_at,
        "last_error": step.last_error,
        "step_details": details,
        "usage": step.usage,
        "metadata": step.metadata,
    }
