"""The process-wide SandboxManager, configured from settings."""

from __future__ import annotations

from functools import cache

from django.conf import settings

from apps.core.redis_client import get_redis
from workers.sandbox.manager import SandboxConfig, SandboxManager


def sandbox_config() -> SandboxConfig:
    return SandboxConfig(
        image=settings.SANDBOX_IMAGE,
        memory=settings.SANDBOX_MEMORY,
        cpus=settings.SANDBOX_CPUS,
        pids_limit=settings.SANDBOX_PIDS_LIMIT,
        data_size=settings.SANDBOX_DATA_SIZE,
        tmp_size=settings.SANDBOX_TMP_SIZE,
        exec_timeout=settings.SANDBOX_EXEC_TIMEOUT,
        idle_timeout=settings.SANDBOX_IDLE_TIMEOUT,
        warm_pool_size=settings.SANDBOX_WARM_POOL_SIZE,
        namespace=settings.SANDBOX_NAMESPACE,
        output_limit=settings.SANDBOX_LOG_MAX_CHARS,
        max_output_files=settings.SANDBOX_OUTPUT_MAX_FILES,
        max_output_bytes=settings.SANDBOX_OUTPUT_MAX_BYTES,
        max_sessions=settings.SANDBOX_MAX_SESSIONS,
        max_sessions_per_project=settings.SANDBOX_MAX_SESSIONS_PER_PROJECT,
    )


@cache
def get_manager() -> SandboxManager:
    return SandboxManager(sandbox_config(), get_redis(), backend=settings.SANDBOX_BACKEND)
