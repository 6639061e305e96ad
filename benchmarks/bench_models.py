"""The embedded models on this machine: for chat (the bundled SmolLM2, or LLM_MODEL_PATH) time to
first token, tokens/s and the server's RSS; for embeddings (multilingual-e5-small) chunks/s
and single-query latency. Each model runs alone in the real model server process, with
LLM_THREADS threads (default 1: the machine is shared). Also prints the answers, to judge their quality."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

import openai  # noqa: E402

from benchmarks._stack import percentile  # noqa: E402
from ops import embedded_models  # noqa: E402

QUESTIONS = [
    "What is the capital of France?",
    "Explain in two sentences why the sky is blue.",
    "Write a Python function that returns the square of a number.",
    "Name three primary colours.",
    "What is 12 plus 30?",
]
MAX_TOKENS = 64
CHUNK = ("The quarterly report shows revenue growth across every region, while costs fell and "
         "the board approved new investment in research and development. ") * 8  # ~240 tokens
CHUNKS = 64
BATCH = 16
QUERIES = 30


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start(env: dict[str, str], directory: Path, *, chat: bool, embeddings: bool):
    log = open(directory / "models.log", "ab")  # noqa: SIM115 (lives with the child)
    started = time.monotonic()
    server = embedded_models.start_model_server(env, directory, chat=chat, embeddings=embeddings,
                                                stdout=log)
    return server, time.monotonic() - started


def bench_chat(env: dict[str, str], directory: Path) -> None:
    server, load_seconds = _start(env, directory, chat=True, embeddings=False)
    try:
        client = openai.OpenAI(base_url=server.state["chat_url"], api_key="none", max_retries=0)
        first_tokens, rates = [], []
        for question in QUESTIONS:
            sent = time.monotonic()
            first = None
            text = ""
            usage = None
            for chunk in client.chat.completions.create(
                    model="bench", messages=[{"role": "user", "content": question}],
                    max_tokens=MAX_TOKENS, temperature=0, stream=True,
                    stream_options={"include_usage": True}):
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        first = first or time.monotonic()
                        text += choice.delta.content
            done = time.monotonic()
            first_tokens.append((first or done) - sent)
            if usage and usage.completion_tokens > 1 and first:
                rates.append((usage.completion_tokens - 1) / max(done - first, 1e-6))
            print(f"  Q: {question}\n  A: {' '.join(text.split())}")
        print(f"chat {server.state['chat_model']}: load {load_seconds:.1f} s, "
              f"time to first token p50 {statistics.median(first_tokens) * 1000:.0f} ms "
              f"(max {max(first_tokens) * 1000:.0f} ms), "
              f"{statistics.median(rates):.1f} tokens/s p50, RSS {_rss_mb(server.process.pid):.0f} MB, "
              f"context {server.state['context_tokens']} tokens")
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)


def bench_embeddings(env: dict[str, str], directory: Path) -> None:
    server, load_seconds = _start(env, directory, chat=False, embeddings=True)
    try:
        client = openai.OpenAI(base_url=server.state["embeddings_url"], api_key="none", max_retries=0)
        model = server.state["embeddings_model"]
        client.embeddings.create(model=model, input=["query: warm up"])
        started = time.monotonic()
        for start in range(0, CHUNKS, BATCH):
            client.embeddings.create(model=model, input=[f"passage: {i} {CHUNK}" for i in range(start, start + BATCH)])
        rate = CHUNKS / (time.monotonic() - started)
        latencies = []
        for i in range(QUERIES):
            sent = time.monotonic()
            client.embeddings.create(model=model, input=[f"query: how did revenue change in quarter {i}"])
            latencies.append(time.monotonic() - sent)
        print(f"embeddings {model}: load {load_seconds:.1f} s, {rate:.1f} chunks/s (~240 tokens each, "
              f"batches of {BATCH}), query latency p50 {percentile(latencies, 50) * 1000:.1f} ms "
              f"p99 {percentile(latencies, 99) * 1000:.1f} ms, RSS {_rss_mb(server.process.pid):.0f} MB")
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)


def main() -> None:
    env = dict(os.environ)
    env.setdefault("LLM_THREADS", "1")
    print(f"threads: {env['LLM_THREADS']}, cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-models-") as scratch:
        directory = Path(scratch)
        bench_chat(env, directory)
        bench_embeddings(env, directory)


if __name__ == "__main__":
    main()
