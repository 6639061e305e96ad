"""Gauges read at scrape time from Postgres and Redis on web: the state of the deployment, not
of a process, so they are right however many workers come and go (and every web replica
reports the same figure: aggregate them with max, not sum)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from django.conf import settings
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# The Celery queues: the Redis transport keeps each one's waiting tasks in a list of its name.
QUEUES = ("runs", "ingest", "sandbox")
WATCHED_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")


def runs_active() -> dict[str, int]:
    from django.db.models import Count

    from apps.runs.models import Run

    counts = dict.fromkeys(WATCHED_STATUSES, 0)
    for row in (Run.objects.filter(status__in=WATCHED_STATUSES).values("status")
                .annotate(n=Count("id"))):
        counts[row["status"]] = row["n"]
    return counts


def oldest_stale_run_seconds(now: float | None = None) -> float:
    """The age of the oldest run the sweeper (workers.runs.tasks.recover_orphaned_runs) should
    be dealing with: in progress or cancelling with no worker heartbeat (since the sweeper first
    saw it so, else since it was claimed), or queued longer than RUN_ORPHAN_AFTER_SECONDS
    (since it was created or last claimed). Read only: a scrape records no sighting. 0: none."""
    from apps.core.redis_client import get_redis
    from apps.runs import events
    from apps.runs.models import Run

    now = now or time.time()
    oldest = 0.0
    held = list(Run.objects.filter(status__in=("in_progress", "cancelling"))
                .values_list("id", "status", "attempts", "started_at"))
    living = events.alive([run_id for run_id, *_ in held])
    unseen = [(run_id, status, attempts, started) for run_id, status, attempts, started in held
              if run_id not in living]
    sightings = get_redis().mget([events.suspect_key(run_id, f"{status}:{attempts}")
                                  for run_id, status, attempts, _ in unseen]) if unseen else []
    for (_, _, _, started_at), seen in zip(unseen, sightings, strict=True):
        since = float(seen) if seen is not None else started_at
        if since:
            oldest = max(oldest, now - since)
    cutoff_ns = int((now - settings.RUN_ORPHAN_AFTER_SECONDS) * 1e9)
    for created_ns, started_at in (Run.objects.filter(status="queued", created_ns__lt=cutoff_ns)
                                   .values_list("created_ns", "started_at")):
        since = max(created_ns / 1e9, started_at or 0)
        if now - since > settings.RUN_ORPHAN_AFTER_SECONDS:
            oldest = max(oldest, now - since)
    return oldest


def queue_depths(redis) -> dict[str, int]:
    pipe = redis.pipeline()
    for queue in QUEUES:
        pipe.llen(queue)
    return dict(zip(QUEUES, pipe.execute(), strict=True))


def sandbox_sessions(redis) -> dict[str, int]:
    """Live sessions (each holds a container) and warm containers waiting in this
    deployment's pools, as workers.sandbox.manager keeps them in Redis."""
    from workers.sandbox.manager import LAST_USED_KEY

    pooled = sum(redis.scard(key) for key in
                 redis.scan_iter(match=f"sandbox:pool:{settings.SANDBOX_NAMESPACE}:*"))
    return {"live": redis.zcard(LAST_USED_KEY), "pooled": pooled}


class StateCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        from apps.core.redis_client import get_redis

        try:
            active = runs_active()
            stale = oldest_stale_run_seconds()
            redis = get_redis()
            depths = queue_depths(redis)
            sessions = sandbox_sessions(redis)
        except Exception:  # noqa: BLE001 (a scrape reports what it can; readiness reports outages)
            logger.exception("could not read the deployment's state for /metrics")
            return
        gauge = GaugeMetricFamily("assistants_runs_active", "Runs not yet finished, by status.",
                                  labels=["status"])
        for status, count in active.items():
            gauge.add_metric([status], count)
        yield gauge
        yield GaugeMetricFamily(
            "assistants_runs_stale_seconds",
            "Age of the oldest run left without a live worker or waiting too long in the queue.",
            value=stale)
        gauge = GaugeMetricFamily("assistants_queue_depth", "Tasks waiting in each Celery queue.",
                                  labels=["queue"])
        for queue, depth in depths.items():
            gauge.add_metric([queue], depth)
        yield gauge
        gauge = GaugeMetricFamily("assistants_sandbox_sessions",
                                  "Code Interpreter containers: live sessions and warm pool.",
                                  labels=["state"])
        for state, count in sessions.items():
            gauge.add_metric([state], count)
        yield gauge
