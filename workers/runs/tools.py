"""How the run's tools are offered to the model: OpenAI's hosted tools become plain function
tools, as OpenAI itself did; each hosted tool says how (workers/runs/hosted.py)."""

from __future__ import annotations

from apps.runs.models import Run
from workers.runs.hosted import run_tools, tool_of_kind


def upstream_tools(run: Run) -> list[dict]:
    offered = []
    for tool in run.tools:
        if tool["type"] == "function":
            offered.append({"type": "function", "function": tool["function"]})
        elif (hosted := tool_of_kind(tool["type"])) is not None:
            offered.append(hosted.upstream_function())
    return offered


def upstream_tool_choice(choice) -> object:
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            return {"type": "function", "function": {"name": choice["function"]["name"]}}
        hosted = tool_of_kind(kind)
        # A kind this server does not have is not offered either: the model chooses freely.
        return hosted.upstream_tool_choice() if hosted is not None else "auto"
    return choice or "auto"


def extra_instructions(run: Run) -> str:
    return "\n\n".join(filter(None, (tool.instructions(run) for tool in run_tools(run))))
