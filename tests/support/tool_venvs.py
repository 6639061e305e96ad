"""Command-line tools the tests drive but the server never imports (kubectl, checkov, ...), each
set pinned in a virtualenv of its own so their dependencies never meet ours. The venvs live in
the user's cache, keyed by the pins, so a second run (or a fresh clone on the same machine)
reuses them."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path


def tool_venv(name: str, requirements: list[str]) -> Path:
    """The bin/ directory of a venv holding exactly `requirements`, created on first use."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "assistants-server"
    digest = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:12]
    venv = cache / f"{name}-{digest}"
    stamp = venv / ".installed"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", *requirements], check=True)
        stamp.write_text("\n".join(requirements) + "\n")
    return venv / "bin"
