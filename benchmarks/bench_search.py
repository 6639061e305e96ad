"""Vector search at scale: p50/p99 latency of the HNSW index the Chunk table uses (256-d
halfvec, cosine, m=16, ef_construction=64, iterative scans) and recall@10 against exact search,
at 100k and 1M chunks (sizes can be given as arguments). Unfiltered, and filtered to one of 10
vector stores. Clustered synthetic embeddings, like real document chunks."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from _stack import percentile  # noqa: E402

DIMENSIONS = 256
CLUSTERS = 1000
QUERIES = 200
STORES = 10
EF_SEARCH = [int(v) for v in os.environ.get("BENCH_EF_SEARCH", "40,100,200,400").split(",")]


def _connect(data_dir: Path):
    import psycopg
    from pgvector.psycopg import register_vector

    from ops.embedded import start_postgres

    url = start_postgres(data_dir, "search_bench")
    connection = psycopg.connect(url, autocommit=True)
    connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
    register_vector(connection)
    return connection


LATENT = 32
DATASET = os.environ.get("BENCH_DATASET", "text")


def _vectors(count: int, seed: int):
    """`text` (default): clustered points of low intrinsic dimension projected into 256-d, the
    shape real text embeddings have. `isotropic`: cluster centres plus full-rank Gaussian noise,
    a worst case where the exact top 10 is nearly arbitrary."""
    import numpy as np

    generator = np.random.default_rng(seed)
    fixed = np.random.default_rng(7)
    if DATASET == "isotropic":
        centers = fixed.normal(size=(CLUSTERS, DIMENSIONS)).astype(np.float32)
        rows = centers[generator.integers(0, CLUSTERS, count)] + 0.35 * generator.normal(
            size=(count, DIMENSIONS)).astype(np.float32)
    else:
        centers = fixed.normal(size=(CLUSTERS, LATENT)).astype(np.float32)
        projection = fixed.normal(size=(LATENT, DIMENSIONS)).astype(np.float32)
        latent = centers[generator.integers(0, CLUSTERS, count)] + 0.5 * generator.normal(
            size=(count, LATENT)).astype(np.float32)
        rows = latent @ projection + 0.5 * generator.normal(size=(count, DIMENSIONS)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _table(size: int) -> str:
    return f"bench_{size}" if DATASET == "isotropic" else f"bench_{DATASET}_{size}"


def _load(connection, size: int) -> None:
    from pgvector import HalfVector

    table = _table(size)
    exists = connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]
    if exists:
        return
    started = time.perf_counter()
    connection.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, store int, embedding halfvec({DIMENSIONS}))")
    batch = 50_000
    with connection.cursor() as cursor:
        for offset in range(0, size, batch):
            rows = _vectors(min(batch, size - offset), seed=offset + 1)
            with cursor.copy(f"COPY {table} (id, store, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "int4", "halfvec"])
                for index, row in enumerate(rows):
                    copy.write_row((offset + index, (offset + index) % STORES, HalfVector(row)))
    loaded = time.perf_counter()
    connection.execute("SET maintenance_work_mem = '4GB'")
    connection.execute("SET max_parallel_maintenance_workers = 2")
    connection.execute(f"CREATE INDEX ON {table} USING hnsw (embedding halfvec_cosine_ops) "
                       "WITH (m = 16, ef_construction = 64)")
    connection.execute(f"CREATE INDEX ON {table} (store)")
    connection.execute(f"ANALYZE {table}")
    print(f"[{size:,} chunks] loaded in {loaded - started:.0f} s, HNSW index built in "
          f"{time.perf_counter() - loaded:.0f} s")


def _measure(connection, size: int, filtered: bool, ef_search: int) -> tuple[list[float], float]:
    from pgvector import HalfVector

    table = _table(size)
    sql = (f"SELECT id FROM {table} WHERE store = %s ORDER BY embedding <=> %s LIMIT 10" if filtered
           else f"SELECT id FROM {table} ORDER BY embedding <=> %s LIMIT 10")
    latencies, recalls = [], []
    for index, query in enumerate(_vectors(QUERIES, seed=999_999)):
        vector = HalfVector(query)
        params = (index % STORES, vector) if filtered else (vector,)
        with connection.transaction():
            connection.execute("SET LOCAL enable_indexscan = off")  # exact: a full scan
            exact = {row[0] for row in connection.execute(sql, params)}
        with connection.transaction():
            connection.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            connection.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
            started = time.perf_counter()
            found = connection.execute(sql, params).fetchall()
            latencies.append(time.perf_counter() - started)
        recalls.append(len(exact & {row[0] for row in found}) / 10)
    return latencies, statistics.mean(recalls)


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [100_000, 1_000_000]
    connection = _connect(BASE_DIR / ".data" / "bench-search")
    for size in sizes:
        _load(connection, size)
        for filtered in (False, True):
            for ef_search in EF_SEARCH:
                latencies, recall = _measure(connection, size, filtered, ef_search)
                label = f"filtered to 1 of {STORES} stores" if filtered else "unfiltered"
                print(f"[{size:,} chunks, {DATASET}] {label:28s} ef_search={ef_search:3d}: "
                      f"p50 {statistics.median(latencies) * 1000:.2f} ms, "
                      f"p99 {percentile(latencies, 99) * 1000:.2f} ms, recall@10 {recall:.3f}")


if __name__ == "__main__":
    main()
