"""The run hot path's database budget, measured in the real runs worker: the task counts its
own round trips (Django's execute wrapper) into a metric, which the test reads from the
worker's /metrics."""

from __future__ import annotations

import time

from tests.test_metrics import scrape, worker_url

QUERY_BUDGET = 6
RUNS = 3


def _tasks(stack) -> tuple[float, float]:
    found = scrape(worker_url(stack, "worker-runs"))
    return (found.value("assistants_run_task_db_queries_count"),
            found.value("assistants_run_task_db_queries_sum"))


def test_a_simple_run_costs_the_worker_at_most_six_queries(client, stack, fake_upstream):
    fake_upstream.reset()
    assistant = client.beta.assistants.create(model="gpt-4o", instructions="Be brief.")
    count_before, sum_before = _tasks(stack)
    for index in range(RUNS):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": f"hello {index}"}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                       poll_interval_ms=50)
        assert run.status == "completed", run.last_error
        messages = client.beta.threads.messages.list(thread_id=thread.id, order="asc").data
        assert messages[-1].content[0].text.value == f"You said: hello {index}"
    # The task records its count as it returns, just after the run's end is visible.
    deadline = time.monotonic() + 10
    while True:
        count_after, sum_after = _tasks(stack)
        if count_after - count_before >= RUNS or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    tasks = count_after - count_before
    assert tasks >= RUNS
    per_run = (sum_after - sum_before) / tasks
    print(f"queries per simple run: {per_run:.2f}")
    assert per_run <= QUERY_BUDGET, f"{per_run:.1f} queries per simple run (budget {QUERY_BUDGET})"
