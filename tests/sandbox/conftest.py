import uuid

import pytest


@pytest.fixture(scope="session")
def manager(stack, sandbox_image):
    """A SandboxManager of its own (own pool keys are not needed: sessions are unique ids),
    talking to the same Docker daemon and Redis as the running stack."""
    import redis

    from workers.sandbox.manager import SandboxConfig, SandboxManager

    config = SandboxConfig(image=sandbox_image, exec_timeout=10, warm_pool_size=0,
                           memory="256m", pids_limit=64, data_size="64m", tmp_size="32m",
                           namespace=f"tests-{uuid.uuid4().hex[:8]}")
    manager = SandboxManager(config, redis.Redis.from_url(stack.env["REDIS_URL"]))
    yield manager
    manager.remove_everything()


@pytest.fixture
def session(manager):
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    manager.close_session(name)
