"""Test settings: the suite owns its embedded Postgres and Redis under .data/test and never
touches a DATABASE_URL / REDIS_URL from the caller's environment (TEST_DATABASE_URL and
TEST_REDIS_URL opt in to external services)."""

import os
from pathlib import Path

_BASE = Path(__file__).resolve().parent.parent
os.environ["DATA_DIR"] = os.environ.get("TEST_DATA_DIR") or str(_BASE / ".data" / "test")
for _name in ("DATABASE_URL", "REDIS_URL"):
    _override = os.environ.get(f"TEST_{_name}")
    if _override:
        os.environ[_name] = _override
    else:
        os.environ.pop(_name, None)

from assistants_project.settings import *  # noqa: E402,F403
