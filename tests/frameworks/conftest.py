"""Agent frameworks as clients: each runs, pinned (locks/), in a virtualenv of its own that the
test set-up creates once under ~/.cache/assistants-server/frameworks/ and reuses while its lock file is unchanged.
The three are built side by side, in the background while the rest of the suite runs, so a
first run costs little more than the slowest install; later runs start at once."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BASE_DIR = HERE.parent.parent
FRAMEWORKS = ("langchain", "autogen", "semantic_kernel")
INSTALL_TIMEOUT = 900


def _env_dir(name: str) -> Path:
    lock = (HERE / "locks" / f"{name}.txt").read_bytes()
    digest = hashlib.sha256(lock + sys.version.encode()).hexdigest()[:12]
    # In the user's cache, keyed by the lock, so a fresh clone on the same machine (CI) reuses them.
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "assistants-server"
    root = Path(os.environ.get("FRAMEWORK_ENVS_DIR") or cache / "frameworks")
    return root / f"{name}-{digest}"


def _python(env: Path) -> Path:
    return env / "bin" / "python"


def _start_install(name: str) -> tuple[Path, subprocess.Popen] | None:
    env = _env_dir(name)
    if (env / ".installed").exists():
        return None
    env.parent.mkdir(parents=True, exist_ok=True)
    for stale in env.parent.glob(f"{name}-*"):  # an earlier lock's environment, or a broken one
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    log = (env.parent / f"{env.name}.log").open("w")
    process = subprocess.Popen(
        [str(_python(env)), "-m", "pip", "install", "--disable-pip-version-check", "-q",
         "--no-input", "-r", str(HERE / "locks" / f"{name}.txt")],
        stdout=log, stderr=subprocess.STDOUT)
    return env, process


_INSTALLS: dict[str, tuple[Path, subprocess.Popen] | None] = {}


def _start_installs() -> None:
    for name in FRAMEWORKS:
        if name not in _INSTALLS:
            _INSTALLS[name] = _start_install(name)


def pytest_collection_modifyitems(session, config, items) -> None:
    """The framework tests run last, and their environments (when missing) build in the
    background meanwhile, so a first run hides most of the install behind the other tests."""
    ours = [item for item in items if HERE in Path(str(item.path)).parents]
    if not ours:
        return
    items[:] = [item for item in items if HERE not in Path(str(item.path)).parents] + ours
    _start_installs()


@pytest.fixture(scope="session")
def framework_pythons() -> dict[str, Path]:
    """The interpreter of each framework's own virtualenv, created when missing."""
    _start_installs()
    for name, job in _INSTALLS.items():
        if job is None:
            continue
        env, process = job
        if process.wait(timeout=INSTALL_TIMEOUT) != 0:
            log = (env.parent / f"{env.name}.log").read_text()[-3000:]
            pytest.fail(f"installing {name}'s pinned environment failed:\n{log}")
        (env / ".installed").touch()
    return {name: _python(_env_dir(name)) for name in FRAMEWORKS}


def run_client(python: Path, name: str, settings: dict, timeout: float = 240) -> dict:
    """Runs clients/<name>_client.py in the framework's environment; its outcomes by scenario."""
    settings_path = Path(settings["work_dir"]) / f"{name}-settings.json"
    settings_path.write_text(json.dumps(settings))
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("OPENAI_", "DJANGO_", "PYTHON"))}
    # The frameworks build clients of their own in places (LangChain's async client,
    # Semantic Kernel's settings): they all read these.
    env.update(OPENAI_BASE_URL=settings["base_url"], OPENAI_API_KEY=settings["api_key"],
               PYTHONPATH=str(HERE / "clients"))
    finished = subprocess.run([str(python), str(HERE / "clients" / f"{name}_client.py"),
                               str(settings_path)], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=settings["work_dir"])
    assert finished.returncode == 0, finished.stderr[-4000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])
