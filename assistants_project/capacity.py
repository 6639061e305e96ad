"""Start-up check that a worker's concurrency fits its database pool. A thread (or green)
pool shares one connection pool per process, and a task holds its connection while it runs:
more slots than connections leave the surplus tasks waiting DB_POOL_TIMEOUT for one, then
failing, while their runs sit `queued`."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

# Pools whose slots run in one process and so share its database pool.
SHARED_PROCESS_POOLS = ("threads", "gevent", "eventlet")


def pool_name(pool_cls: object) -> str:
    """Celery's -P value, from a name or the pool class it was resolved to."""
    text = pool_cls if isinstance(pool_cls, str) else f"{pool_cls.__module__}.{pool_cls.__name__}"
    text = text.lower()
    for name in SHARED_PROCESS_POOLS:
        if name.rstrip("s") in text:
            return name
    return "solo" if "solo" in text else "prefork"


# Queues whose tasks give their connection back between writes (a run waiting on the model
# holds none: workers/runs/writer.release_connection), so their slots share a few connections.
RELEASING_QUEUES = frozenset({"runs"})


def connections_needed(pool: str, concurrency: int, queues: frozenset[str] | None = None) -> int:
    # prefork: each child process has a pool of its own and runs one task at a time.
    if queues and queues <= RELEASING_QUEUES:
        return 1
    return concurrency if pool in SHARED_PROCESS_POOLS else 1


def check_worker_capacity(pool: str, concurrency: int, db_pool_max_size: int,
                          queues: frozenset[str] | None = None) -> None:
    needed = connections_needed(pool, concurrency, queues)
    if needed > db_pool_max_size:
        raise ImproperlyConfigured(
            f"The worker runs {concurrency} tasks at once in one process (-P {pool} -c "
            f"{concurrency}) but DB_POOL_MAX_SIZE is {db_pool_max_size}: tasks past "
            f"{db_pool_max_size} would wait for a database connection and fail. Lower the "
            f"concurrency or set DB_POOL_MAX_SIZE to at least {needed}."
        )
