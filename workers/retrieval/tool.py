"""The hosted file_search tool: the model's queries run against the run's vector stores; each
result goes back headed by a 【turn:index†filename】 marker, and markers the model copies into
its answer become `file_citation` annotations."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from apps.runs import state
from apps.runs.models import Run, RunStep
from apps.vector_stores.search import search
from apps.vector_stores.services import touch
from apps.vector_stores.tool_resources import vector_store_ids
from workers.runs.hosted import Annotator, HostedResult, HostedTool

DEFAULT_MAX_RESULTS = 20
SMALL_MODEL_MAX_RESULTS = 5
MARKER = re.compile(r"【(\d+):(\d+)†([^】]*)】")


def _options(run: Run) -> tuple[int, float, str]:
    for tool in run.tools:
        if tool["type"] == "file_search":
            options = tool.get("file_search") or {}
            ranking = options.get("ranking_options") or {}
            default = SMALL_MODEL_MAX_RESULTS if run.model.startswith("gpt-3.5") else DEFAULT_MAX_RESULTS
            return (options.get("max_num_results") or default,
                    ranking.get("score_threshold") or 0.0,
                    ranking.get("ranker") or "default_2024_08_21")
    return DEFAULT_MAX_RESULTS, 0.0, "default_2024_08_21"


def _queries(arguments: str) -> list[str]:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return [arguments] if arguments else []
    queries = parsed.get("queries") if isinstance(parsed, dict) else None
    if isinstance(queries, str):
        return [queries]
    if isinstance(queries, list):
        return [str(q) for q in queries if str(q).strip()]
    query = parsed.get("query") if isinstance(parsed, dict) else None
    return [str(query)] if query else []


THREAD_STORE_WAIT_SECONDS = 60


def _wait_for_thread_stores(run: Run) -> bool:
    """OpenAI's fallback: a run waits up to 60 s for files still being processed in the
    thread's vector store (not the assistant's) before it searches. A cancel or the run's
    expiry ends the wait at once; False then, and the search should not run."""
    from apps.threads.models import Thread
    from apps.vector_stores.models import VectorStoreFile

    thread = Thread.objects.filter(pk=run.thread_id).first()
    store_ids = vector_store_ids(thread.tool_resources if thread else None)
    deadline = time.monotonic() + THREAD_STORE_WAIT_SECONDS
    while store_ids and time.monotonic() < deadline and VectorStoreFile.objects.filter(
            vector_store_id__in=store_ids, status="in_progress").exists():
        if state.must_stop(run):
            return False
        time.sleep(0.2)
    return True


def run_file_search(run: Run, call_id: str, arguments: str) -> HostedResult:
    max_results, threshold, ranker = _options(run)
    if not _wait_for_thread_stores(run):
        # The executor ends the run right after this call; the step records no search.
        return HostedResult(model_output="The run was stopped before the search ran.", record={
            "type": "file_search", "file_search": {
                "ranking_options": {"ranker": ranker, "score_threshold": threshold}, "results": []}})
    store_ids = vector_store_ids(run.tool_resources)
    queries = _queries(arguments)
    hits = search(store_ids, queries, max_results=max_results, score_threshold=threshold) \
        if store_ids and queries else []
    if store_ids:
        touch(store_ids)
    # Each search call of the run gets its own number, so parallel calls in one step never
    # hand out the same marker for different sources.
    turn = sum(1 for tool_io in RunStep.objects.filter(run=run, type="tool_calls")
               .values_list("tool_io", flat=True)
               for call in (tool_io or {}).values() if "citations" in call)
    citations = {}
    sections = []
    for index, hit in enumerate(hits):
        marker = f"【{turn}:{index}†{hit.filename}】"
        citations[marker] = hit.file_id
        sections.append(f"{marker}\n{hit.text}")
    output = "\n\n".join(sections) if sections else "No results found in the attached files."
    record = {"type": "file_search", "file_search": {
        "ranking_options": {"ranker": ranker, "score_threshold": threshold},
        "results": [{"file_id": hit.file_id, "file_name": hit.filename, "score": hit.score,
                     "content": [{"type": "text", "text": hit.text}]} for hit in hits]}}
    return HostedResult(model_output=output, record=record, extras={"citations": citations})


def _citations(run: Run) -> Callable[[re.Match[str]], dict | None]:
    """The markers this run's searches handed out, each standing for its file."""
    citations: dict[str, str] = {}
    for io in RunStep.objects.filter(run=run, type="tool_calls").values_list("tool_io", flat=True):
        for call in io.values():
            citations.update(call.get("citations") or {})

    def annotate(match: re.Match[str]) -> dict | None:
        file_id = citations.get(match.group(0))
        return None if file_id is None else {"type": "file_citation",
                                             "file_citation": {"file_id": file_id}}

    return annotate


def expired_stores(run: Run) -> str | None:
    """"When a vector store expires, runs on that thread will fail" (OpenAI's docs); the user
    recreates the store from the same files and attaches it again."""
    from apps.vector_stores.models import VectorStore

    if not any(tool["type"] == "file_search" for tool in run.tools):
        return None
    store_ids = vector_store_ids(run.tool_resources)
    expired = list(VectorStore.objects.filter(pk__in=store_ids, expired=True)
                   .order_by("pk").values_list("pk", flat=True))
    if not expired:
        return None
    return (f"Vector store {', '.join(expired)} has expired. Create a new vector store with the "
            "same files and attach it to the thread or assistant.")


class FileSearch(HostedTool):
    kind = "file_search"
    function_name = "file_search"
    description = (
        "Search the user's uploaded files. Give one or more short search queries; results "
        "come back headed by citation markers like 【0:1†filename】."
    )
    parameters = {
        "type": "object",
        "properties": {"queries": {"type": "array", "items": {"type": "string"},
                                   "description": "Search queries."}},
        "required": ["queries"],
    }
    annotator = Annotator(opener="【", pattern=MARKER, resolve=_citations)

    def instructions(self, run: Run) -> str:
        return ("When you use information from file_search results, cite it by copying the "
                "result's marker (for example 【0:1†notes.txt】) right after the sentence that uses it.")

    def preflight(self, run: Run) -> str | None:
        return expired_stores(run)

    def execute(self, run: Run, call_id: str, arguments: str) -> HostedResult:
        return run_file_search(run, call_id, arguments)
