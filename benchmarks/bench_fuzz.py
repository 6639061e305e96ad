"""A long schema-driven fuzz run (tests/support/fuzzing.py, the machinery of tests/test_fuzz.py
with many more examples): every operation, generated and real IDs, positive and negative data.
Prints requests sent, 5xx, schema violations and latency p50/p99.
FUZZ_EXAMPLES (default 60) examples per operation and variant; FUZZ_SEED (default 2026)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import bench_stack  # noqa: E402

from tests.support.fuzzing import fuzz  # noqa: E402

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
SEED = int(os.environ.get("FUZZ_SEED", "2026"))


def main() -> None:
    with bench_stack() as (_stack, _upstream, base_url, key):
        report = fuzz(base_url, key, examples=EXAMPLES, seed=SEED)
    print(f"operations: {len(report.operations)}, examples per operation and variant: {EXAMPLES}, "
          f"seed: {SEED}, {report.seconds:.0f} s")
    print(f"requests sent: {report.requests}")
    print(f"5xx (or no response): {len(report.server_errors)}")
    print(f"schema violations: {len(report.schema_violations)}")
    print(f"latency: p50 {report.percentile(50):.1f} ms, p99 {report.percentile(99):.1f} ms")
    print("statuses: " + ", ".join(f"{status}: {count}" for status, count in sorted(report.statuses.items())))
    for line in (report.server_errors + report.schema_violations)[:20]:
        print("  " + line)


if __name__ == "__main__":
    main()
