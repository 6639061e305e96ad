"""Schema-driven fuzzing with schemathesis, shared by tests/test_fuzz.py (short, in `make test`)
and benchmarks/bench_fuzz.py (long). Every operation of the contract is driven three ways:
generated path IDs, real IDs of live objects (so requests reach the services, not just the 404),
and negative (schema-breaking) data with real IDs. Each response is checked with schemathesis's
`not_a_server_error` and `response_schema_conformance`, and every error body against
`ErrorResponse` (the spec declares only 200 and 429, so schemathesis checks no other status)."""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass, field

from apps.core.openapi import load_spec, response_errors

# Path parameter → the key of `ids` that fills it.
REAL_IDS = ("assistant_id", "thread_id", "message_id", "run_id", "step_id", "file_id",
            "vector_store_id", "batch_id")


@dataclass
class FuzzReport:
    requests: int = 0
    server_errors: list[str] = field(default_factory=list)
    schema_violations: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    operations: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    # One example per status code, to show what the fuzzer reached.
    samples: dict[int, str] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def contract_schema():
    """The contract as the server enforces it (apps/core/openapi.py: OpenAPI 3.1 nullables,
    the decisions of apps/core/spec/DECISIONS.md), loaded by schemathesis."""
    import schemathesis

    spec = copy.deepcopy(load_spec())
    # Without a security requirement schemathesis spends no negative case on dropping the API
    # key: every case reaches validation (tests/test_edge.py covers missing and wrong keys).
    spec.pop("security", None)
    return schemathesis.openapi.from_dict(spec)


def make_objects(session, base_url: str) -> dict[str, str]:
    """One live object of every kind, for the runs with real IDs."""
    def post(path: str, **kwargs) -> dict:
        response = session.post(base_url + path, timeout=60, **kwargs)
        response.raise_for_status()
        return response.json()

    ids = {"assistant_id": post("/assistants", json={"model": "gpt-4o"})["id"]}
    thread = post("/threads", json={"messages": [{"role": "user", "content": "hello"}]})
    ids["thread_id"] = thread["id"]
    messages = session.get(f"{base_url}/threads/{thread['id']}/messages", timeout=60).json()
    ids["message_id"] = messages["data"][0]["id"]
    ids["file_id"] = post("/files", files={"file": ("notes.txt", b"alpha beta gamma")},
                          data={"purpose": "assistants"})["id"]
    ids["vector_store_id"] = post("/vector_stores", json={"name": "fuzz"})["id"]
    ids["batch_id"] = post(f"/vector_stores/{ids['vector_store_id']}/file_batches",
                           json={"file_ids": [ids["file_id"]]})["id"]
    run = post(f"/threads/{thread['id']}/runs", json={"assistant_id": ids["assistant_id"]})
    ids["run_id"] = run["id"]
    for _ in range(200):
        steps = session.get(f"{base_url}/threads/{thread['id']}/runs/{run['id']}/steps",
                            timeout=60).json()["data"]
        if steps:
            ids["step_id"] = steps[0]["id"]
            break
        time.sleep(0.05)
    else:
        ids["step_id"] = "step_none"
    return ids


def fuzz(base_url: str, api_key: str, *, examples: int, seed: int,
         ids: dict[str, str] | None = None, deadline_s: float | None = None) -> FuzzReport:
    import requests
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import response_schema_conformance

    schema = contract_schema()
    report = FuzzReport()
    session = requests.Session()
    # Passed with every call, so they win over the credentials schemathesis generates from the
    # document's security scheme (tests/test_edge.py covers missing and wrong keys).
    headers = {"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "assistants=v2"}
    session.headers.update(headers)
    ids = ids if ids is not None else make_objects(session, base_url)
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    # Deletions last, so the live objects serve every other operation first.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")

    def exercise(case, label: str) -> None:
        began = time.perf_counter()
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=60)
        except requests.RequestException as exc:
            report.server_errors.append(f"{label}: no response ({exc!r})")
            return
        report.latencies_ms.append((time.perf_counter() - began) * 1000)
        report.requests += 1
        report.operations.add(label)
        report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
        described = f"{label} {case.method} {response.request.path_url[:200]} -> {response.status_code}"
        report.samples.setdefault(response.status_code, f"{described}: {response.text[:200]}")
        if response.status_code >= 500:
            report.server_errors.append(f"{described}: {response.text[:300]}")
            return
        try:
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        except (FailureGroup, AssertionError) as exc:  # schemathesis groups its check failures
            report.schema_violations.append(f"{described}: {str(exc)[:600]}")
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                report.schema_violations.append(f"{described}: error body is not JSON")
                return
            for problem in response_errors("ErrorResponse", body):
                report.schema_violations.append(f"{described}: ErrorResponse {problem}")

    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        names = set(re.findall(r"\{(\w+)\}", operation.path))
        real = {name: ids[name] for name in names if name in ids}
        variants = [(GenerationMode.POSITIVE, None), (GenerationMode.POSITIVE, real),
                    (GenerationMode.NEGATIVE, real)]
        for mode, fixed in variants:
            report.seconds = time.monotonic() - started
            if deadline_s is not None and report.seconds > deadline_s:
                return report
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed or None)
            _run_examples(strategy, lambda case, label=label: exercise(case, label), examples, seed)
    report.seconds = time.monotonic() - started
    return report


def _run_examples(strategy, each, examples: int, seed: int) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fixed_seed
    from hypothesis.errors import Unsatisfiable

    @fixed_seed(seed)
    @settings(max_examples=examples, database=None, deadline=None, derandomize=False,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case) -> None:
        each(case)

    try:
        run()
    except Unsatisfiable:
        # Negative mode with the path fixed: the operation has nothing left to break.
        return


def summary(report: FuzzReport) -> str:
    return json.dumps({
        "requests": report.requests, "operations": len(report.operations),
        "server_errors": len(report.server_errors),
        "schema_violations": len(report.schema_violations),
        "p50_ms": round(report.percentile(50), 1), "p99_ms": round(report.percentile(99), 1),
        "seconds": round(report.seconds, 1),
        "statuses": dict(sorted(report.statuses.items())),
    })
