"""Chaos soak against the real `make run` processes (`manage.py serve`, supervised): runs over
many client threads while worker processes are SIGKILLed, Redis and Postgres restarted and the
web process restarted with streams open. Prints what was lost, stuck, duplicated or executed
twice, streams that ended silently, and completion times with and without faults.

    .venv/bin/python benchmarks/chaos_runs.py [--runs 1000] [--threads 32] [--kills 20]

The short version (100 runs, 3 kills, one Redis restart) runs in `make test`
(tests/test_faults.py) and asserts zero on every count."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "benchmarks"))
warnings.filterwarnings("ignore", category=DeprecationWarning)

TERMINAL = ("cancelled", "failed", "completed", "incomplete", "expired")
ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
# The share of each kind of run (the rest are plain): streamed, function, file_search, code.
MIX = (("plain", 0.30), ("streamed", 0.30), ("function", 0.20), ("file_search", 0.10), ("code", 0.10))
# Which worker a kill hits: runs mostly, where the work is.
KILL_TARGETS = (("worker-runs", 0.6), ("worker-sandbox", 0.3), ("worker-ingest", 0.1))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


from _served import Served, database_url, serve  # noqa: E402,F401 (serve: for the tests too)


# -- the fake model ---------------------------------------------------------------------------
def chaos_responder(body: dict):
    """Decides each reply from the run's marker (`chaos <kind> <n>`) in the user message, and
    whether the tool turn is over (a tool message is present)."""
    from tests.fake_upstream import Reply

    messages = body.get("messages") or []
    user = next((m.get("content") for m in messages if m.get("role") == "user"), "") or ""
    if isinstance(user, list):
        user = " ".join(part.get("text", "") for part in user if isinstance(part, dict))
    if "chaos" not in user:
        return None
    kind = user.split()[1]
    slow = dict(chunk_words=2, per_chunk_delay=0.03)
    if any(m.get("role") == "tool" for m in messages) or kind in ("plain", "streamed"):
        return Reply(text=f"Answer for {user}: " + "lorem ipsum dolor sit amet " * 6, **slow)
    call = {"function": ("get_weather", '{"city": "Paris"}'),
            "file_search": ("file_search", '{"queries": ["chaos soak notes"]}'),
            "code": ("python", '{"code": "print(6 * 7)"}')}[kind]
    return Reply(tool_calls=[call], first_token_delay=0.05)


def marker_of(body: dict) -> str | None:
    for message in body.get("messages") or []:
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str) and content.startswith("chaos "):
            return content
    return None


# -- the client side ------------------------------------------------------------------------
@dataclass
class Outcome:
    marker: str
    kind: str
    thread_id: str = ""
    run_id: str = ""
    status: str = ""
    seconds: float = 0.0
    stream_end: str = ""  # done | error | silent (streamed runs only)
    error: str = ""


class Client:
    def __init__(self, base_url: str, api_key: str) -> None:
        import openai

        # The SDK's own retries ride out a web restart; ours below the rest of a fault.
        self.sdk = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=4, timeout=60)
        self.base_url = base_url
        self.api_key = api_key

    def retry(self, operation, seconds: float = 120.0):
        import openai

        deadline = time.monotonic() + seconds
        delay = 0.2
        while True:
            try:
                return operation()
            except (openai.APIConnectionError, openai.InternalServerError, openai.APITimeoutError,
                    openai.RateLimitError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(2.0, delay * 2)

    def start_run(self, thread_id: str, assistant_id: str):
        import openai

        try:
            return self.retry(lambda: self.sdk.beta.threads.runs.create(
                thread_id=thread_id, assistant_id=assistant_id))
        except openai.BadRequestError as error:
            # A retried create whose first try went through: that run is ours.
            if "already has an active run" not in str(error):
                raise
            return self.retry(lambda: self.sdk.beta.threads.runs.list(thread_id, limit=1)).data[0]

    def wait(self, thread_id: str, run_id: str, until: tuple[str, ...], seconds: float = 900.0):
        deadline = time.monotonic() + seconds
        while True:
            run = self.retry(lambda: self.sdk.beta.threads.runs.retrieve(run_id, thread_id=thread_id))
            if run.status in until or time.monotonic() > deadline:
                return run
            time.sleep(0.25)

    def stream_run(self, thread_id: str, assistant_id: str) -> tuple[str, str]:
        """(run id, how the stream ended: done, error or silent). A create the server refused
        outright (429, or 5xx while a fault lasts) made no run, and is sent again, as the SDK
        would."""
        deadline = time.monotonic() + 120
        delay = 0.2
        while True:
            run_id, ending = self._stream_once(thread_id, assistant_id)
            refused = ending in ("http 429", "http 500", "http 502", "http 503", "http 504")
            if run_id or not refused or time.monotonic() > deadline:
                return run_id, ending
            time.sleep(delay)
            delay = min(2.0, delay * 2)

    def _stream_once(self, thread_id: str, assistant_id: str) -> tuple[str, str]:
        import httpx2

        run_id, ending = "", "silent"
        try:
            with httpx2.stream("POST", f"{self.base_url}/threads/{thread_id}/runs", timeout=120,
                               json={"assistant_id": assistant_id, "stream": True},
                               headers={"Authorization": f"Bearer {self.api_key}",
                                        "OpenAI-Beta": "assistants=v2"}) as response:
                if response.status_code != 200:
                    return "", f"http {response.status_code}"
                event = ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                        if event in ("done", "error"):
                            ending = event
                    elif line.startswith("data: ") and event == "thread.run.created" and not run_id:
                        run_id = json.loads(line[6:])["id"]
        except Exception as error:  # noqa: BLE001 (a cut stream is what is being counted)
            return run_id, f"silent ({type(error).__name__})" if ending == "silent" else ending
        return run_id, ending


def one_run(client: Client, assistants: dict[str, str], kind: str, index: int) -> Outcome:
    marker = f"chaos {kind} {index} {uuid.uuid4().hex[:8]}"
    outcome = Outcome(marker, kind)
    started = time.monotonic()
    try:
        thread = client.retry(lambda: client.sdk.beta.threads.create(
            messages=[{"role": "user", "content": marker}]))
        outcome.thread_id = thread.id
        assistant = assistants[kind]
        if kind == "streamed":
            outcome.run_id, outcome.stream_end = client.stream_run(thread.id, assistant)
            if not outcome.run_id:
                outcome.run_id = client.retry(lambda: client.sdk.beta.threads.runs.list(
                    thread.id, limit=1)).data[0].id
        else:
            outcome.run_id = client.start_run(thread.id, assistant).id
        run = client.wait(thread.id, outcome.run_id, (*TERMINAL, "requires_action"))
        if run.status == "requires_action":
            calls = run.required_action.submit_tool_outputs.tool_calls
            client.retry(lambda: client.sdk.beta.threads.runs.submit_tool_outputs(
                run_id=run.id, thread_id=thread.id,
                tool_outputs=[{"tool_call_id": c.id, "output": "22 C"} for c in calls]))
            run = client.wait(thread.id, run.id, TERMINAL)
        outcome.status = run.status
    except Exception as error:  # noqa: BLE001 (counted and printed, never hidden)
        outcome.error = f"{type(error).__name__}: {error}"[:300]
    outcome.seconds = time.monotonic() - started
    return outcome


def setup_assistants(client: Client) -> dict[str, str]:
    sdk = client.sdk
    store = sdk.vector_stores.create(name="chaos")
    sdk.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("notes.txt", b"Chaos soak notes: every run completes once.\n" * 40))
    plain = sdk.beta.assistants.create(model="gpt-4o", instructions="Be terse.").id
    return {
        "plain": plain, "streamed": plain,
        "function": sdk.beta.assistants.create(model="gpt-4o", tools=[WEATHER]).id,
        "file_search": sdk.beta.assistants.create(
            model="gpt-4o", tools=[{"type": "file_search"}],
            tool_resources={"file_search": {"vector_store_ids": [store.id]}}).id,
        "code": sdk.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}]).id,
    }


def kinds(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    names, weights = zip(*MIX, strict=True)
    return rng.choices(names, weights=weights, k=count)


def drive(client: Client, assistants: dict[str, str], count: int, threads: int, seed: int,
          offset: int = 0) -> list[Outcome]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda pair: one_run(client, assistants, pair[1], offset + pair[0]),
                             enumerate(kinds(count, seed))))


# -- faults -----------------------------------------------------------------------------------
@dataclass
class FaultPlan:
    kills: int = 20
    kill_every: tuple[float, float] = (3.0, 6.0)
    redis_restarts: int = 1
    postgres_restarts: int = 1
    web_restarts: int = 1


# The supervisor gives up on a process that dies 5 times in a minute (an orchestrator's crash
# loop): kills stay under that, counting the deaths a Redis restart causes (Celery's workers
# and beat end when their broker connection drops, and are restarted).
MAX_KILLS_PER_MINUTE = 3


def inject_faults(served: Served, plan: FaultPlan, done: threading.Event, seed: int) -> list[str]:
    """Kills spaced out over the load; Redis, Postgres and web restarts spread among them."""
    rng = random.Random(seed)
    names, weights = zip(*KILL_TARGETS, strict=True)
    actions = [("kill", None)] * plan.kills
    extra = ([("kill", "redis")] * plan.redis_restarts + [("stop", "postgres")] * plan.postgres_restarts
             + [("stop", "web")] * plan.web_restarts)
    for action in extra:
        actions.insert(rng.randint(1, max(1, len(actions) - 1)), action)
    deaths: dict[str, list[float]] = defaultdict(list)
    journal = []
    for how, name in actions:
        if done.wait(rng.uniform(*plan.kill_every)):
            journal.append("load finished before every fault was injected")
            break
        now = time.monotonic()
        if name is None:
            allowed = [(n, w) for n, w in zip(names, weights, strict=True)
                       if sum(1 for t in deaths[n] if now - t < 60) < MAX_KILLS_PER_MINUTE]
            while not allowed and not done.wait(1):
                now = time.monotonic()
                allowed = [(n, w) for n, w in zip(names, weights, strict=True)
                           if sum(1 for t in deaths[n] if now - t < 60) < MAX_KILLS_PER_MINUTE]
            if not allowed:
                break
            name = rng.choices([n for n, _ in allowed], weights=[w for _, w in allowed])[0]
        pid = served.wait_for_child(name, timeout=90)
        # A worker or Redis dies as the OOM killer would; Postgres and web are restarted as a
        # deploy would (fast shutdown, graceful stop).
        sig = signal.SIGKILL if how == "kill" else (signal.SIGINT if name == "postgres" else signal.SIGTERM)
        os.kill(pid, sig)
        for victim in ([*names, "beat"] if name == "redis" else [name]):
            deaths[victim].append(time.monotonic())
        journal.append(f"{time.strftime('%H:%M:%S')} {how} {name} (pid {pid})")
        served.wait_for_child(name, timeout=90, other_than=pid)
    return journal


# -- the verdict ------------------------------------------------------------------------------
def verdict(served: Served, upstream, outcomes: list[Outcome], settle_seconds: float = 180.0) -> dict:
    """Counts from the database and the fake upstream's request log, once everything settled."""
    import psycopg

    run_ids = [o.run_id for o in outcomes if o.run_id]
    deadline = time.monotonic() + settle_seconds
    with psycopg.connect(database_url(served.data_dir), autocommit=True) as db:
        while True:
            rows = db.execute("SELECT id, status, expires_at, resumes, attempts FROM runs_run "
                              "WHERE id = ANY(%s)", [run_ids]).fetchall()
            if all(row[1] in TERMINAL for row in rows) or time.monotonic() > deadline:
                break
            time.sleep(1)
        runs = {row[0]: row for row in rows}
        messages = Counter(row[0] for row in db.execute(
            "SELECT run_id FROM threads_message WHERE role = 'assistant' AND run_id = ANY(%s)",
            [run_ids]).fetchall())
    now = time.time()
    calls: dict[str, Counter] = defaultdict(Counter)
    for request in upstream.chat_requests():
        marker = marker_of(request)
        if marker:
            calls[marker][sum(1 for m in request.get("messages") or [] if m.get("role") == "tool")] += 1
    lost, stuck, duplicated, doubled, silent = [], [], [], [], []
    statuses = Counter()
    for outcome in outcomes:
        row = runs.get(outcome.run_id)
        if row is None:
            lost.append(outcome.marker)
            continue
        _, status, expires_at, resumes, _ = row
        statuses[status] += 1
        if status not in TERMINAL and status != "in_progress":
            lost.append(outcome.run_id)
        if status in ACTIVE and expires_at is not None and expires_at < now:
            stuck.append(outcome.run_id)
        if messages[outcome.run_id] > 1:
            duplicated.append(outcome.run_id)
        repeats = sum(count - 1 for count in calls[outcome.marker].values())
        if repeats > resumes:
            doubled.append(outcome.run_id)
        if outcome.kind == "streamed" and outcome.stream_end not in ("done", "error"):
            silent.append(f"{outcome.run_id} ({outcome.stream_end})")
    return {"runs": len(outcomes), "statuses": dict(statuses), "lost": lost, "stuck": stuck,
            "duplicated": duplicated, "double_executed": doubled, "silent_streams": silent,
            "client_errors": [o.error for o in outcomes if o.error],
            "resumed": sum(1 for row in runs.values() if row[3]),
            "stream_errors": sum(1 for o in outcomes if o.stream_end == "error")}


def chaos(served: Served, upstream, runs: int, threads: int, plan: FaultPlan, seed: int = 7,
          baseline_runs: int = 0) -> dict:
    client = Client(served.base_url, served.api_key)
    upstream.set_responder(chaos_responder)
    assistants = setup_assistants(client)
    baseline = drive(client, assistants, baseline_runs, threads, seed + 1, offset=10**6) if baseline_runs else []
    done = threading.Event()
    journal: list[str] = []
    injector = threading.Thread(target=lambda: journal.extend(inject_faults(served, plan, done, seed)),
                                daemon=True)
    started = time.monotonic()
    injector.start()
    outcomes = drive(client, assistants, runs, threads, seed)
    done.set()
    injector.join(timeout=120)
    report = verdict(served, upstream, outcomes)
    report["faults"] = journal
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    completed = [o.seconds for o in outcomes if o.status == "completed"]
    calm = [o.seconds for o in baseline if o.status == "completed"]
    report["p50_p99_with_faults"] = (round(percentile(completed, 50), 3), round(percentile(completed, 99), 3))
    report["p50_p99_without_faults"] = (round(percentile(calm, 50), 3), round(percentile(calm, 99), 3))
    return report


def chaos_env(upstream_url: str) -> dict[str, str]:
    return {"LLM_BASE_URL": upstream_url, "LLM_API_KEY": "sk-fake",
            "EMBEDDINGS_BASE_URL": upstream_url, "EMBEDDINGS_API_KEY": "sk-fake",
            "RUN_ORPHAN_AFTER_SECONDS": "4", "MAINTENANCE_INTERVAL_SECONDS": "1",
            "LLM_RETRY_BUDGET_SECONDS": "10", "SANDBOX_WARM_POOL_SIZE": "2",
            "LOG_LEVEL": "WARNING"}


def print_report(report: dict) -> None:
    for name in ("lost", "stuck", "duplicated", "double_executed", "silent_streams"):
        items = report[name]
        print(f"{name:>24}: {len(items)}" + (f"  {items[:10]}" if items else ""))
    print(f"{'statuses':>24}: {report['statuses']}")
    print(f"{'resumed runs':>24}: {report['resumed']}")
    print(f"{'streams ending in error':>24}: {report['stream_errors']}")
    print(f"{'client errors':>24}: {len(report['client_errors'])}  {report['client_errors'][:5]}")
    print(f"{'p50/p99 s, with faults':>24}: {report['p50_p99_with_faults']}")
    print(f"{'p50/p99 s, no faults':>24}: {report['p50_p99_without_faults']}")
    print(f"{'wall time s':>24}: {report['wall_seconds']}")
    print("faults:\n  " + "\n  ".join(report["faults"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--baseline-runs", type=int, default=200)
    parser.add_argument("--data-dir", type=Path, default=BASE_DIR / ".data" / "chaos")
    # Until SSE relays stop holding a database connection per open stream (issue 9), 32
    # clients with streams open can exhaust the web's default pool of 20 (PoolTimeout).
    parser.add_argument("--db-pool-max-size", type=int, default=None)
    args = parser.parse_args()
    from http.server import ThreadingHTTPServer

    from tests.fake_upstream import FakeUpstream

    # The fake model shares this process with 32 busy clients: a backlog of 5 pending
    # connections (the default) would refuse the workers' calls, failing runs for no fault.
    ThreadingHTTPServer.request_queue_size = 256
    subprocess.run(["rm", "-rf", str(args.data_dir)], check=True)
    upstream = FakeUpstream().start()
    image = subprocess.run(["bash", str(BASE_DIR / "sandbox_image" / "build.sh")], check=True,
                           capture_output=True, text=True).stdout.strip().splitlines()[-1]
    extra = {"DB_POOL_MAX_SIZE": str(args.db_pool_max_size)} if args.db_pool_max_size else {}
    served = serve(args.data_dir, {**chaos_env(upstream.base_url), "SANDBOX_IMAGE": image, **extra})
    try:
        report = chaos(served, upstream, args.runs, args.threads, FaultPlan(kills=args.kills),
                       baseline_runs=args.baseline_runs)
    finally:
        code = served.stop()
        upstream.stop()
    print_report(report)
    supervisor_lines = [line for line in served.lines if line.startswith("supervisor:")]
    recovery_lines = Counter(line.split("event=")[1].split()[0] for line in served.lines if "recovery run=" in line)
    print(f"serve exited with {code}; supervisor said:\n  " + "\n  ".join(supervisor_lines))
    print(f"recovery lines by event: {dict(recovery_lines)}")


if __name__ == "__main__":
    main()
