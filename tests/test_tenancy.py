"""Project isolation: another project's IDs answer as if they did not exist, wherever they
appear (path, body, list filter, cursor), and no list or search ever shows another project's
objects. Project A (the session's `client`) is the victim; project B (`other_client`) probes.

What is already covered elsewhere (plain retrieve/list of A's assistant, thread, message, file,
vector store, search on A's store, B running A's assistant on its own thread) is not repeated."""

from __future__ import annotations

import contextlib
import io
import secrets
import string

import openai
import pytest

from tests.conftest import make_client
from tests.fake_upstream import Reply

SECRET_WORDS = ("aardvark", "zebra", "secret-a", "classified")
SECRET_TEXT = b"Classified: the zebra password is aardvark-7781."
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
}
_ALPHABET = string.ascii_letters + string.digits


def _bogus(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


PREFIX = {"file": "file-", "store": "vs_", "asst": "asst_", "thread": "thread_", "msg": "msg_",
          "run": "run_", "step": "step_", "batch": "vsfb_"}


def _no_leak(error: openai.APIStatusError) -> None:
    text = str(error.body).lower() + str(error.response.text).lower()
    for word in SECRET_WORDS:
        assert word not in text, f"error leaks {word!r}: {error.body}"


def _normalised(error: openai.APIStatusError, object_id: str) -> tuple:
    body = error.body or {}
    return (error.status_code, str(body.get("message")).replace(object_id, "<ID>"),
            body.get("param"), body.get("code"))


def as_if_missing(call, foreign_id: str, kind: str, *, body_ref: bool = False):
    """`call(id)` with another project's id fails exactly as with an id that never existed:
    404 for a path id, 400 or 404 for an id in the body or a list cursor; nothing of A in the
    message."""
    allowed = (openai.NotFoundError, openai.BadRequestError) if body_ref else (openai.NotFoundError,)
    with pytest.raises(openai.APIStatusError) as foreign:
        call(foreign_id)
    assert isinstance(foreign.value, allowed), (foreign.value.status_code, foreign.value.body)
    _no_leak(foreign.value)
    bogus = _bogus(PREFIX[kind])
    with pytest.raises(openai.APIStatusError) as unknown:
        call(bogus)
    assert _normalised(foreign.value, foreign_id) == _normalised(unknown.value, bogus)
    return foreign.value


@pytest.fixture(scope="module")
def victim(api_base, api_key, fake_upstream):
    """Project A's objects, made once: a file in an ingested store (with its batch), an
    assistant, a thread whose run waits for tool outputs, and a thread with a completed run."""
    a = make_client(api_base, api_key)
    fake_upstream.reset()
    file_a = a.files.create(file=("secret-a.txt", io.BytesIO(SECRET_TEXT)), purpose="assistants")
    store_a = a.vector_stores.create(name="secret-a store")
    batch_a = a.vector_stores.file_batches.create_and_poll(
        vector_store_id=store_a.id, file_ids=[file_a.id], poll_interval_ms=50)
    assert batch_a.file_counts.completed == 1
    assistant_a = a.beta.assistants.create(
        model="gpt-4o", name="secret-a", tools=[WEATHER_TOOL, {"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store_a.id]}})
    thread_a = a.beta.threads.create(messages=[{"role": "user", "content": "classified question"}],
                                     metadata={"owner": "a"})
    message_a = a.beta.threads.messages.list(thread_a.id).data[0]
    fake_upstream.enqueue(Reply(tool_calls=[("get_weather", '{"city": "Paris"}')]))
    waiting = a.beta.threads.runs.create_and_poll(
        thread_id=thread_a.id, assistant_id=assistant_a.id, poll_interval_ms=50,
        metadata={"owner": "a"})
    assert waiting.status == "requires_action"
    step_a = a.beta.threads.runs.steps.list(waiting.id, thread_id=thread_a.id).data[0]
    fake_upstream.enqueue(Reply(text="classified answer"))
    thread_done = a.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    done = a.beta.threads.runs.create_and_poll(
        thread_id=thread_done.id, assistant_id=assistant_a.id, poll_interval_ms=50)
    assert done.status == "completed"
    fake_upstream.reset()
    yield {"client": a, "file": file_a.id, "store": store_a.id, "batch": batch_a.id,
           "asst": assistant_a.id, "thread": thread_a.id, "msg": message_a.id,
           "run": waiting.id, "step": step_a.id, "call": waiting.required_action
           .submit_tool_outputs.tool_calls[0].id, "done_thread": thread_done.id,
           "done_run": done.id}
    with contextlib.suppress(openai.APIStatusError):
        a.beta.threads.runs.cancel(waiting.id, thread_id=thread_a.id)
    a.close()


def _project_of(sdk) -> str:
    from apps.core.models import ApiKey, hash_api_key

    return ApiKey.objects.get(key_hash=hash_api_key(sdk.api_key)).project_id


def _counts(project_id: str) -> dict:
    from apps.assistants.models import Assistant
    from apps.files.models import File
    from apps.runs.models import Run, RunStep
    from apps.threads.models import Message, Thread
    from apps.vector_stores.models import FileBatch, VectorStore, VectorStoreFile

    models = {"assistant": Assistant, "file": File, "run": Run, "thread": Thread,
              "message": Message, "vector_store": VectorStore, "store_file": VectorStoreFile,
              "batch": FileBatch}
    counts = {name: model.objects.filter(project_id=project_id).count()
              for name, model in models.items()}
    counts["step"] = RunStep.objects.filter(run__project_id=project_id).count()
    return counts


def _victim_state(victim) -> dict:
    a = victim["client"]
    run = a.beta.threads.runs.retrieve(victim["run"], thread_id=victim["thread"])
    message = a.beta.threads.messages.retrieve(victim["msg"], thread_id=victim["thread"])
    store = a.vector_stores.retrieve(victim["store"])
    thread = a.beta.threads.retrieve(victim["thread"])
    return {
        "run": (run.status, run.metadata, run.required_action is not None),
        "steps": [(s.id, s.status) for s in a.beta.threads.runs.steps.list(
            victim["run"], thread_id=victim["thread"])],
        "message": (message.metadata, message.content[0].text.value),
        "thread": thread.model_dump(),
        "store": (store.name, store.metadata, store.file_counts.model_dump()),
        "store_files": [(f.id, f.status, f.attributes) for f in a.vector_stores.files.list(
            victim["store"])],
        "batch": a.vector_stores.file_batches.retrieve(
            victim["batch"], vector_store_id=victim["store"]).status,
        "assistant": a.beta.assistants.retrieve(victim["asst"]).model_dump(),
        "file": a.files.retrieve(victim["file"]).model_dump(),
    }


@pytest.fixture
def untouched(victim, orm, other_client):
    """Neither project gained or lost anything it did not ask for, and A is unchanged."""
    a_project, b_project = _project_of(victim["client"]), _project_of(other_client)
    before = (_counts(a_project), _victim_state(victim))
    yield b_project
    assert (_counts(a_project), _victim_state(victim)) == before


@pytest.fixture
def mine(other_client):
    """B's own objects to put A's ids under."""
    b = other_client
    file_b = b.files.create(file=("b.txt", io.BytesIO(b"Knead the dough and bake the bread.")),
                            purpose="assistants")
    store_b = b.vector_stores.create(name="b")
    batch_b = b.vector_stores.file_batches.create_and_poll(
        vector_store_id=store_b.id, file_ids=[file_b.id], poll_interval_ms=50)
    assistant_b = b.beta.assistants.create(model="gpt-4o", tools=[WEATHER_TOOL])
    thread_b = b.beta.threads.create(messages=[{"role": "user", "content": "mine"}])
    return {"file": file_b.id, "store": store_b.id, "batch": batch_b.id, "asst": assistant_b.id,
            "thread": thread_b.id}


# --- path ids: A's child objects under B's own parents, and under A's parents ---------------
@pytest.mark.parametrize("parent", ["b_thread", "a_thread"])
def test_anothers_messages_runs_and_steps_are_404_under_either_thread(parent, other_client, victim,
                                                                      mine, untouched):
    b, runs = other_client, other_client.beta.threads.runs
    messages = b.beta.threads.messages
    thread_id = mine["thread"] if parent == "b_thread" else victim["thread"]
    as_if_missing(lambda m: messages.retrieve(m, thread_id=thread_id), victim["msg"], "msg")
    as_if_missing(lambda m: messages.update(m, thread_id=thread_id, metadata={"x": "y"}),
                  victim["msg"], "msg")
    as_if_missing(lambda m: messages.delete(m, thread_id=thread_id), victim["msg"], "msg")
    as_if_missing(lambda r: runs.retrieve(r, thread_id=thread_id), victim["run"], "run")
    as_if_missing(lambda r: runs.update(r, thread_id=thread_id, metadata={"x": "y"}),
                  victim["run"], "run")
    as_if_missing(lambda r: runs.cancel(r, thread_id=thread_id), victim["run"], "run")
    as_if_missing(lambda r: runs.submit_tool_outputs(
        r, thread_id=thread_id, tool_outputs=[{"tool_call_id": victim["call"], "output": "x"}]),
        victim["run"], "run")
    as_if_missing(lambda r: runs.submit_tool_outputs(
        r, thread_id=thread_id, stream=True,
        tool_outputs=[{"tool_call_id": victim["call"], "output": "x"}]), victim["run"], "run")
    as_if_missing(lambda r: runs.steps.list(r, thread_id=thread_id), victim["run"], "run")
    as_if_missing(lambda s: runs.steps.retrieve(s, thread_id=thread_id, run_id=victim["run"]),
                  victim["step"], "step")


def test_anothers_thread_takes_no_writes_or_runs(other_client, victim, mine, untouched):
    b, runs = other_client, other_client.beta.threads.runs
    with pytest.raises(openai.NotFoundError):
        runs.list(thread_id=victim["thread"])
    with pytest.raises(openai.NotFoundError):
        b.beta.threads.update(victim["thread"], metadata={"owner": "b"})
    with pytest.raises(openai.NotFoundError):
        b.beta.threads.delete(victim["thread"])
    with pytest.raises(openai.NotFoundError):
        runs.create(thread_id=victim["thread"], assistant_id=mine["asst"])
    assert [r.id for r in runs.list(thread_id=mine["thread"])] == []


def test_anothers_step_is_404_under_bs_own_run(other_client, victim, mine, upstream, untouched):
    runs = other_client.beta.threads.runs
    upstream.enqueue(Reply(text="ok"))
    run_b = runs.create_and_poll(thread_id=mine["thread"], assistant_id=mine["asst"],
                                 poll_interval_ms=50)
    assert run_b.status == "completed"
    as_if_missing(lambda s: runs.steps.retrieve(s, thread_id=mine["thread"], run_id=run_b.id),
                  victim["step"], "step")
    assert victim["step"] not in [s.id for s in runs.steps.list(run_b.id, thread_id=mine["thread"])]
    assert [r.id for r in runs.list(thread_id=mine["thread"])] == [run_b.id]


def test_messages_filtered_by_anothers_run_id_are_an_empty_list(other_client, victim, mine,
                                                                untouched):
    messages = other_client.beta.threads.messages
    page = messages.list(mine["thread"], run_id=victim["done_run"])
    assert page.data == [] and page.has_more is False
    with pytest.raises(openai.NotFoundError):
        messages.list(victim["done_thread"], run_id=victim["done_run"])


def test_vector_store_paths_with_anothers_ids(other_client, victim, mine, untouched):
    b = other_client
    files, batches = b.vector_stores.files, b.vector_stores.file_batches
    # A's file and batch under B's own store.
    as_if_missing(lambda f: files.retrieve(f, vector_store_id=mine["store"]), victim["file"], "file")
    as_if_missing(lambda f: files.content(f, vector_store_id=mine["store"]), victim["file"], "file")
    as_if_missing(lambda f: files.update(f, vector_store_id=mine["store"], attributes={"k": "v"}),
                  victim["file"], "file")
    as_if_missing(lambda f: files.delete(f, vector_store_id=mine["store"]), victim["file"], "file")
    as_if_missing(lambda x: batches.retrieve(x, vector_store_id=mine["store"]), victim["batch"], "batch")
    as_if_missing(lambda x: batches.cancel(x, vector_store_id=mine["store"]), victim["batch"], "batch")
    as_if_missing(lambda x: batches.list_files(x, vector_store_id=mine["store"]), victim["batch"], "batch")
    # B's batch under A's store, and everything under A's store.
    store = victim["store"]
    as_if_missing(lambda s: batches.retrieve(mine["batch"], vector_store_id=s), store, "store")
    as_if_missing(lambda s: batches.retrieve(victim["batch"], vector_store_id=s), store, "store")
    as_if_missing(lambda s: batches.cancel(victim["batch"], vector_store_id=s), store, "store")
    as_if_missing(lambda s: batches.list_files(victim["batch"], vector_store_id=s), store, "store")
    as_if_missing(lambda s: batches.create(vector_store_id=s, file_ids=[mine["file"]]), store, "store")
    as_if_missing(lambda s: files.list(s), store, "store")
    as_if_missing(lambda s: files.retrieve(victim["file"], vector_store_id=s), store, "store")
    as_if_missing(lambda s: files.content(victim["file"], vector_store_id=s), store, "store")
    as_if_missing(lambda s: files.update(victim["file"], vector_store_id=s, attributes={"k": "v"}),
                  store, "store")
    as_if_missing(lambda s: files.delete(victim["file"], vector_store_id=s), store, "store")
    as_if_missing(lambda s: files.create(vector_store_id=s, file_id=mine["file"]), store, "store")
    as_if_missing(lambda s: b.vector_stores.update(s, name="stolen"), store, "store")
    as_if_missing(lambda s: b.vector_stores.delete(s), store, "store")
    as_if_missing(lambda s: b.vector_stores.search(s, query="zebra password"), store, "store")
    # B's own store still holds exactly B's file.
    assert [f.id for f in files.list(mine["store"])] == [mine["file"]]


def test_anothers_file_cannot_be_deleted_or_used_as_a_cursor(other_client, victim, untouched):
    b = other_client
    as_if_missing(lambda f: b.files.delete(f), victim["file"], "file")
    as_if_missing(lambda f: b.files.content(f), victim["file"], "file")
    as_if_missing(lambda f: b.files.list(after=f), victim["file"], "file", body_ref=True)


# --- ids inside request bodies ------------------------------------------------------------
def _file_search_helper(x):
    return {"file_search": {"vector_stores": [{"file_ids": [x]}]}}


BODY_CASES = {
    # (kind of A's id injected, call)
    "thread_create_code_interpreter_file_ids": (
        "file", lambda b, x, o: b.beta.threads.create(
            tool_resources={"code_interpreter": {"file_ids": [x]}})),
    "thread_create_vector_store_ids": (
        "store", lambda b, x, o: b.beta.threads.create(
            tool_resources={"file_search": {"vector_store_ids": [x]}})),
    "thread_create_vector_stores_helper_file_ids": (
        "file", lambda b, x, o: b.beta.threads.create(tool_resources=_file_search_helper(x))),
    "thread_create_message_attachment_file_search": (
        "file", lambda b, x, o: b.beta.threads.create(messages=[{
            "role": "user", "content": "see", "attachments": [
                {"file_id": x, "tools": [{"type": "file_search"}]}]}])),
    "thread_create_message_attachment_code_interpreter": (
        "file", lambda b, x, o: b.beta.threads.create(messages=[{
            "role": "user", "content": "see", "attachments": [
                {"file_id": x, "tools": [{"type": "code_interpreter"}]}]}])),
    "thread_create_message_image_file": (
        "file", lambda b, x, o: b.beta.threads.create(messages=[{
            "role": "user", "content": [{"type": "image_file", "image_file": {"file_id": x}}]}])),
    "thread_update_code_interpreter_file_ids": (
        "file", lambda b, x, o: b.beta.threads.update(
            o["thread"], tool_resources={"code_interpreter": {"file_ids": [x]}})),
    "thread_update_vector_store_ids": (
        "store", lambda b, x, o: b.beta.threads.update(
            o["thread"], tool_resources={"file_search": {"vector_store_ids": [x]}})),
    "message_create_attachment": (
        "file", lambda b, x, o: b.beta.threads.messages.create(
            o["thread"], role="user", content="see",
            attachments=[{"file_id": x, "tools": [{"type": "file_search"}]}])),
    "message_create_code_interpreter_attachment": (
        "file", lambda b, x, o: b.beta.threads.messages.create(
            o["thread"], role="user", content="see",
            attachments=[{"file_id": x, "tools": [{"type": "code_interpreter"}]}])),
    "message_create_image_file": (
        "file", lambda b, x, o: b.beta.threads.messages.create(
            o["thread"], role="user",
            content=[{"type": "image_file", "image_file": {"file_id": x}}])),
    "run_create_assistant_id": (
        "asst", lambda b, x, o: b.beta.threads.runs.create(thread_id=o["thread"], assistant_id=x)),
    "run_create_additional_message_attachment": (
        "file", lambda b, x, o: b.beta.threads.runs.create(
            thread_id=o["thread"], assistant_id=o["asst"], additional_messages=[{
                "role": "user", "content": "see",
                "attachments": [{"file_id": x, "tools": [{"type": "code_interpreter"}]}]}])),
    "run_create_additional_message_image_file": (
        "file", lambda b, x, o: b.beta.threads.runs.create(
            thread_id=o["thread"], assistant_id=o["asst"], additional_messages=[{
                "role": "user", "content": [{"type": "image_file", "image_file": {"file_id": x}}]}])),
    "create_and_run_assistant_id": (
        "asst", lambda b, x, o: b.beta.threads.create_and_run(
            assistant_id=x, thread={"messages": [{"role": "user", "content": "hi"}]})),
    "create_and_run_stream_assistant_id": (
        "asst", lambda b, x, o: b.beta.threads.create_and_run(
            assistant_id=x, stream=True, thread={"messages": [{"role": "user", "content": "hi"}]})),
    "create_and_run_tool_resources_vector_store_ids": (
        "store", lambda b, x, o: b.beta.threads.create_and_run(
            assistant_id=o["asst"], tool_resources={"file_search": {"vector_store_ids": [x]}})),
    "create_and_run_tool_resources_code_interpreter": (
        "file", lambda b, x, o: b.beta.threads.create_and_run(
            assistant_id=o["asst"], tool_resources={"code_interpreter": {"file_ids": [x]}})),
    "create_and_run_thread_tool_resources": (
        "store", lambda b, x, o: b.beta.threads.create_and_run(
            assistant_id=o["asst"],
            thread={"tool_resources": {"file_search": {"vector_store_ids": [x]}}})),
    "create_and_run_thread_helper_file_ids": (
        "file", lambda b, x, o: b.beta.threads.create_and_run(
            assistant_id=o["asst"], thread={"tool_resources": _file_search_helper(x)})),
    "create_and_run_thread_message_attachment": (
        "file", lambda b, x, o: b.beta.threads.create_and_run(
            assistant_id=o["asst"], thread={"messages": [{
                "role": "user", "content": "see",
                "attachments": [{"file_id": x, "tools": [{"type": "file_search"}]}]}]})),
    "assistant_create_vector_store_ids": (
        "store", lambda b, x, o: b.beta.assistants.create(
            model="gpt-4o", tools=[{"type": "file_search"}],
            tool_resources={"file_search": {"vector_store_ids": [x]}})),
    "assistant_create_code_interpreter_file_ids": (
        "file", lambda b, x, o: b.beta.assistants.create(
            model="gpt-4o", tools=[{"type": "code_interpreter"}],
            tool_resources={"code_interpreter": {"file_ids": [x]}})),
    "assistant_create_vector_stores_helper": (
        "file", lambda b, x, o: b.beta.assistants.create(
            model="gpt-4o", tools=[{"type": "file_search"}], tool_resources=_file_search_helper(x))),
    "assistant_update_vector_store_ids": (
        "store", lambda b, x, o: b.beta.assistants.update(
            o["asst"], tool_resources={"file_search": {"vector_store_ids": [x]}})),
    "assistant_update_code_interpreter_file_ids": (
        "file", lambda b, x, o: b.beta.assistants.update(
            o["asst"], tool_resources={"code_interpreter": {"file_ids": [x]}})),
    "vector_store_create_file_ids": (
        "file", lambda b, x, o: b.vector_stores.create(file_ids=[x])),
    "vector_store_file_create": (
        "file", lambda b, x, o: b.vector_stores.files.create(vector_store_id=o["store"], file_id=x)),
    "file_batch_create_file_ids": (
        "file", lambda b, x, o: b.vector_stores.file_batches.create(
            vector_store_id=o["store"], file_ids=[o["file"], x])),
    "file_batch_create_files": (
        "file", lambda b, x, o: b.vector_stores.file_batches.create(
            vector_store_id=o["store"], files=[{"file_id": x}])),
}


@pytest.mark.parametrize("case", list(BODY_CASES))
def test_anothers_id_in_a_request_body_is_unknown(case, other_client, victim, mine, untouched):
    kind, call = BODY_CASES[case]
    b = other_client
    before = _counts(untouched)
    thread_before = b.beta.threads.retrieve(mine["thread"]).model_dump()
    assistant_before = b.beta.assistants.retrieve(mine["asst"]).model_dump()
    as_if_missing(lambda x: call(b, x, mine), victim[kind], kind, body_ref=True)
    assert _counts(untouched) == before
    assert b.beta.threads.retrieve(mine["thread"]).model_dump() == thread_before
    assert b.beta.assistants.retrieve(mine["asst"]).model_dump() == assistant_before
    # The refused request left no lock behind: B's thread still takes messages.
    b.beta.threads.messages.create(mine["thread"], role="user", content="still mine")


# --- lists and searches -------------------------------------------------------------------
def test_no_list_or_search_shows_anothers_objects(other_client, victim, mine, untouched):
    b = other_client
    for purpose in (None, "assistants", "assistants_output", "batch"):
        listed = b.files.list(purpose=purpose) if purpose else b.files.list()
        assert victim["file"] not in [f.id for f in listed]
    assert [s.id for s in b.vector_stores.list()] == [mine["store"]]
    assert [a.id for a in b.beta.assistants.list()] == [mine["asst"]]
    assert [f.id for f in b.vector_stores.files.list(mine["store"])] == [mine["file"]]
    assert [f.id for f in b.vector_stores.file_batches.list_files(
        mine["batch"], vector_store_id=mine["store"])] == [mine["file"]]
    hits = b.vector_stores.search(mine["store"], query="zebra password aardvark classified",
                                  max_num_results=50)
    assert all(h.file_id == mine["file"] for h in hits.data)
    assert "aardvark" not in str([h.model_dump() for h in hits.data]).lower()


def test_file_search_in_bs_run_never_reaches_anothers_store(other_client, victim, mine, upstream,
                                                            untouched):
    b = other_client
    assistant = b.beta.assistants.create(
        model="gpt-4o", tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [mine["store"]]}})
    upstream.enqueue(Reply(tool_calls=[("file_search", '{"queries": ["zebra password aardvark"]}')]),
                     Reply(text="done"))
    thread = b.beta.threads.create(
        messages=[{"role": "user", "content": "zebra password?", "attachments": [
            {"file_id": mine["file"], "tools": [{"type": "file_search"}]}]}])
    run = b.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                              poll_interval_ms=50)
    assert run.status == "completed", run.last_error
    tool_messages = [m for m in upstream.chat_requests()[-1]["messages"] if m["role"] == "tool"]
    assert tool_messages and "aardvark" not in str(tool_messages).lower()
    step = b.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data[0]
    results = step.step_details.tool_calls[0].file_search.results
    assert all(r.file_id == mine["file"] for r in results)


def test_anothers_ids_as_list_cursors_behave_as_unknown(client, other_client, victim, untouched):
    b = other_client
    b.beta.assistants.create(model="gpt-4o")
    as_if_missing(lambda x: b.beta.assistants.list(after=x), victim["asst"], "asst", body_ref=True)
    # A deletes an assistant: its id must stay unknown to B, not become a valid cursor in B's list.
    gone = client.beta.assistants.create(model="gpt-4o")
    client.beta.assistants.delete(gone.id)
    as_if_missing(lambda x: b.beta.assistants.list(after=x), gone.id, "asst", body_ref=True)
