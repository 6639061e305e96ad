"""A hosted tool is one object: what the model is offered, what it is told, how its calls are
checked, carried out, recorded in the step and streamed, and what it makes of the answer's text.
The tools this deployment has are the ones named in HOSTED_TOOLS, plus the deployment's own in
the HOSTED_TOOLS_EXTRA setting (`kind=dotted.path.ToolClass`, which also lets the API accept
that tool type). Adding a tool is one module and one line here."""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from apps.runs.models import Run

logger = logging.getLogger(__name__)

HOSTED_TOOLS = [
    "workers.retrieval.tool.FileSearch",
    "workers.sandbox.tool.CodeInterpreter",
]


@dataclass
class HostedResult:
    """What a hosted tool call produced: the text returned to the model and the step record."""

    model_output: str
    record: dict
    extras: dict = field(default_factory=dict)  # kept in the step's tool_io (e.g. citations)


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


class CallStream:
    """One call's arguments as they stream in. The default shows nothing until the call ran."""

    def feed(self, fragment: str) -> dict | None:
        """What `fragment` adds to the record, as the body of a step delta (under the tool's
        kind), or None for nothing to send yet."""
        return None

    def sync(self, record: dict) -> None:
        """What streamed so far, into the call's record (when the step is saved)."""


class HostedTool(ABC):
    """One hosted tool. Subclasses set the class attributes and override what they need."""

    kind: str                   # the tool's `type` in the API ("file_search")
    function_name: str          # the function the model calls for it ("python")
    description: str            # what the model is told the function does
    parameters: dict            # the function's JSON Schema
    # Markers of the tool's in any run's answer (held back while they stream, then annotated).
    annotator: Annotator | None = None

    def upstream_function(self) -> dict:
        return {"type": "function", "function": {
            "name": self.function_name, "description": self.description, "parameters": self.parameters}}

    def upstream_tool_choice(self) -> dict:
        """What `tool_choice: {"type": kind}` becomes upstream: that function, forced."""
        return {"type": "function", "function": {"name": self.function_name}}

    def instructions(self, run: Run) -> str:
        """Added to the run's instructions when the run has the tool."""
        return ""

    def preflight(self, run: Run) -> str | None:
        """Before a run with the tool first calls the model: why it cannot proceed, or None."""
        return None

    @abstractmethod
    def execute(self, run: Run, call_id: str, arguments: str) -> HostedResult:
        """Carries out one call (`arguments` as the model wrote them); its record replaces the
        streamed one and `model_output` goes back to the model."""

    def initial_record(self, call_id: str) -> dict:
        """The call's record in the step while the model is still writing it."""
        return {"id": call_id, "type": self.kind, self.kind: {}}

    def call_stream(self) -> CallStream:
        return CallStream()

    def output_delta(self, record: dict) -> dict | None:
        """The step delta body (under the tool's kind) sent once the call ran, or None."""
        return None

    def finalize_text(self, run: Run, text: str) -> tuple[list[dict], list[dict]]:
        """A message of a run with the tool, done: (annotations found only now, extra parts)."""
        return [], []


def _load(path: str, *, optional: bool) -> HostedTool | None:
    try:
        tool_class = import_string(path)
    except ModuleNotFoundError as exc:
        # A built-in tool's package may be left out of an image; a configured one may not.
        module = path.rsplit(".", 1)[0]
        if optional and exc.name is not None and module.startswith(exc.name):
            logger.info("hosted tool module %s not present", module)
            return None
        raise
    if not (isinstance(tool_class, type) and issubclass(tool_class, HostedTool)):
        raise ImproperlyConfigured(f"{path} is not a HostedTool")
    return tool_class()


@cache
def registered() -> dict[str, HostedTool]:
    """The deployment's hosted tools by kind, loaded once per process."""
    tools: dict[str, HostedTool] = {}
    entries = [(None, path, True) for path in HOSTED_TOOLS]
    entries += [(kind, path, False) for kind, path in settings.HOSTED_TOOLS_EXTRA.items()]
    for kind, path, optional in entries:
        tool = _load(path, optional=optional)
        if tool is None:
            continue
        if kind is not None and tool.kind != kind:
            raise ImproperlyConfigured(
                f"HOSTED_TOOLS_EXTRA names {path} for '{kind}', but its kind is '{tool.kind}'.")
        tools[tool.kind] = tool
    return tools


def tool_of_kind(kind: str) -> HostedTool | None:
    return registered().get(kind)


def run_tools(run: Run) -> list[HostedTool]:
    """The hosted tools the run has, in the order of its tools, each once."""
    kinds = dict.fromkeys(t["type"] for t in run.tools if t["type"] != "function")
    return [tool for tool in map(tool_of_kind, kinds) if tool is not None]


def tool_for_call(run: Run, function_name: str) -> HostedTool | None:
    """The hosted tool a function call stands for, unless the user defined that name."""
    if any(t["type"] == "function" and t["function"]["name"] == function_name for t in run.tools):
        return None
    return next((tool for tool in run_tools(run) if tool.function_name == function_name), None)
