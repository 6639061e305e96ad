"""The production compose file is valid and has the five processes: web, one worker per queue
(runs, ingest, sandbox) and beat."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.mark.docker
def test_docker_compose_config_validates(sandbox_image):
    env = {**os.environ, "SECRET_KEY": "test-secret"}
    result = subprocess.run(["docker-compose", "-f", str(BASE_DIR / "docker-compose.yml"), "config"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"db", "redis", "web", "worker-runs", "worker-ingest", "worker-sandbox", "beat"} <= set(services)
    assert services["db"]["image"].startswith("pgvector/pgvector")
    for name in ("db", "redis", "web", "worker-runs", "worker-ingest", "worker-sandbox"):
        assert "healthcheck" in services[name], name
    # Nothing runs as root; optional settings pass through only when set on the host.
    assert all(service.get("user") in (None, "app") for service in services.values())
    assert services["worker-sandbox"]["group_add"]
    assert services["web"]["environment"]["EMBEDDINGS_MODEL"] is None
    assert services["web"]["environment"]["SANDBOX_NAMESPACE"] == "assistants"
