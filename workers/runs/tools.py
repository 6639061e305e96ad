"""How the run's tools are offered to the model (OpenAI's hosted tools become plain function
tools, as OpenAI itself did) and how the model's calls to hosted tools are carried out."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from apps.runs.models import Run

CODE_INTERPRETER_FUNCTION = {
    "type": "function",
    "function": {
        "name": "python",
        "description": (
            "Run Python code in a stateful Jupyter-like sandbox (numpy, pandas, matplotlib "
            "available). Files the user attached are in /mnt/data; save files you create there. "
            "Printed output and the last expression's value are returned. No internet access."
        ),
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python code to run."}},
            "required": ["code"],
        },
    },
}

FILE_SEARCH_FUNCTION = {
    "type": "function",
    "function": {
        "name": "file_search",
        "description": (
            "Search the user's uploaded files. Give one or more short search queries; results "
            "come back headed by citation markers like 【0:1†filename】."
        ),
        "parameters": {
            "type": "object",
            "properties": {"queries": {"type": "array", "items": {"type": "string"},
                                       "description": "Search queries."}},
            "required": ["queries"],
        },
    },
}

FILE_SEARCH_INSTRUCTIONS = (
    "When you use information from file_search results, cite it by copying the result's marker "
    "(for example 【0:1†notes.txt】) right after the sentence that uses it."
)

HOSTED_FUNCTION_NAMES = {"python": "code_interpreter", "file_search": "file_search"}


@dataclass
class HostedResult:
    """What a hosted tool call produced: the text returned to the model and the step record."""

    model_output: str
    record: dict
    message_parts: list[dict] = field(default_factory=list)
    extras: dict = field(default_factory=dict)  # kept in the step's tool_io (e.g. citations)


HostedHandler = Callable[[Run, str, str], HostedResult]  # (run, call_id, arguments_json)
HOSTED_HANDLERS: dict[str, HostedHandler] = {}


def register_hosted_tool(kind: str, handler: HostedHandler) -> None:
    HOSTED_HANDLERS[kind] = handler


def upstream_tools(run: Run) -> list[dict]:
    offered = []
    for tool in run.tools:
        if tool["type"] == "function":
            offered.append({"type": "function", "function": tool["function"]})
        elif tool["type"] == "code_interpreter":
            offered.append(CODE_INTERPRETER_FUNCTION)
        elif tool["type"] == "file_search":
            offered.append(FILE_SEARCH_FUNCTION)
    return offered


def upstream_tool_choice(choice) -> object:
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            return {"type": "function", "function": {"name": choice["function"]["name"]}}
        name = "python" if kind == "code_interpreter" else "file_search"
        return {"type": "function", "function": {"name": name}}
    return choice or "auto"


def hosted_kind(run: Run, function_name: str) -> str | None:
    """The hosted tool a function call stands for, unless the user defined that name."""
    user_functions = {t["function"]["name"] for t in run.tools if t["type"] == "function"}
    if function_name in user_functions:
        return None
    kind = HOSTED_FUNCTION_NAMES.get(function_name)
    if kind and any(t["type"] == kind for t in run.tools):
        return kind
    return None


def extra_instructions(run: Run) -> str:
    if any(t["type"] == "file_search" for t in run.tools):
        return FILE_SEARCH_INSTRUCTIONS
    return ""


@dataclass(frozen=True)
class Annotator:
    """Markers in the answer (a file_search citation, a sandbox file link) that become
    annotations. The turn writer finds them while the text streams, so each annotation goes out
    in the same delta as the text it annotates (stream consumers such as Semantic Kernel read
    annotations only there)."""

    opener: str                 # every marker starts with this text
    pattern: re.Pattern[str]    # one whole marker
    # Called once per turn, when the first marker shows up: (run) -> a function giving a
    # match's annotation fields ({"type": ..., "file_citation": ...}), or None for no annotation.
    resolve: Callable[[Run], Callable[[re.Match[str]], dict | None]]


ANNOTATORS: list[Annotator] = []


def register_annotator(annotator: Annotator) -> None:
    ANNOTATORS.append(annotator)


# Post-processing of the final text: (run, text) -> (annotations, extra content parts).
TextFinalizer = Callable[[Run, str], tuple[list[dict], list[dict]]]
TEXT_FINALIZERS: list[TextFinalizer] = []


def register_text_finalizer(finalizer: TextFinalizer) -> None:
    TEXT_FINALIZERS.append(finalizer)


# Checks before a run's first model call: (run) -> why the run cannot proceed, or None.
RunPreflight = Callable[[Run], "str | None"]
RUN_PREFLIGHTS: list[RunPreflight] = []


def register_run_preflight(check: RunPreflight) -> None:
    RUN_PREFLIGHTS.append(check)
