"""What `make run` tells a newcomer once everything serves: where the API is, the dev key,
which models answer, whether the Code Interpreter has Docker; and, before that, an upstream
that cannot work, with the setting to change. Works on the stack's environment (the children's
settings), not this process's."""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from ops import embedded_models

REAL_MODEL_HINT = ("for a real model: LLM_API_KEY=sk-... (OpenAI), "
                   "LLM_BASE_URL=http://127.0.0.1:11434/v1 (Ollama, vLLM), "
                   "or LLM_MODEL_PATH=/path/model.gguf")


def upstream_problem(env: Mapping[str, str]) -> str | None:
    """An upstream that cannot work: OpenAI with no key, or nothing listening at the URL."""
    base_url = embedded_models.llm_base_url(env)
    if base_url.rstrip("/") == embedded_models.OPENAI_BASE_URL and not env.get("LLM_API_KEY"):
        return ("LLM_BASE_URL is OpenAI's API but LLM_API_KEY is not set: every run will fail. "
                "Set LLM_API_KEY, point LLM_BASE_URL at another backend, or unset both for the "
                "embedded model.")
    if base_url == env.get("LLM_EMBEDDED_URL"):
        return None
    parsed = urllib.parse.urlsplit(base_url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=2):
            return None
    except ConnectionRefusedError:
        return f"LLM_BASE_URL={base_url} refuses connections: runs fail until it answers."
    except OSError:
        return None  # unresolvable or slow here (offline, DNS): the run will say what happened


def _chat_line(env: Mapping[str, str]) -> str:
    base_url = embedded_models.llm_base_url(env)
    if base_url == env.get("LLM_EMBEDDED_URL"):
        return (f"{env.get('LLM_EMBEDDED_MODEL')}, embedded, {env.get('LLM_CONTEXT_TOKENS')} tokens "
                f"of context: a small demo model;\n{'':16}{REAL_MODEL_HINT}")
    return f"whatever model runs ask for, at {base_url}"


def _embeddings_line(env: Mapping[str, str]) -> str:
    backend = embedded_models.embeddings_backend(env)
    if backend == "none":
        return "none: file_search is keyword-only (EMBEDDINGS_BACKEND=none)"
    if backend == embedded_models.EMBEDDED_ROUTE:
        return f"{env.get('EMBEDDINGS_EMBEDDED_MODEL')}, embedded"
    return (f"{env.get('EMBEDDINGS_MODEL') or 'text-embedding-3-large'} at "
            f"{embedded_models.remote_embeddings_url(env)}")


def _docker_line(image: str) -> str:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.images.get(image)
        return f"Docker available (image {image})"
    except Exception as exc:  # noqa: BLE001 (any failure means the same to the user)
        return f"NOT available ({type(exc).__name__}): code_interpreter tool calls will fail; see sandbox_image/"


def _playground_url(root: str) -> str | None:
    from django.urls import Resolver404, resolve

    for path in ("/playground/", "/playground"):
        try:
            resolve(path)
            return root + path
        except Resolver404:
            continue
    return None


def ready_banner(*, env: Mapping[str, str], host: str, port: int, key: str, key_file: Path,
                 log_dir: Path, sandbox_image: str) -> str:
    root = f"http://{host}:{port}"
    lines = [f"\nAssistants API ready at {root}/v1"]
    playground = _playground_url(root)
    if playground:
        lines.append(f"  Playground:     {playground}")
    lines += [
        f"  Dev API key:    {key}  (also in {key_file})",
        f"  Chat model:     {_chat_line(env)}",
        f"  Embeddings:     {_embeddings_line(env)}",
        f"  Code Interpreter: {_docker_line(sandbox_image)}",
        f"  Logs:           {log_dir}/ (only warnings and errors are shown here)",
        "Press Ctrl-C to stop.\n",
    ]
    return "\n".join(lines)
