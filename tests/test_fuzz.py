"""Schema-driven fuzzing (issue 19): schemathesis, driven by the contract, over every operation
against the real stack, with a fixed seed. No request may get a 5xx or break the schemas.
benchmarks/bench_fuzz.py runs the same with many more examples."""

from __future__ import annotations

import os

from tests.support.fuzzing import contract_schema, fuzz, summary

SEED = 19
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))


def test_fuzzing_every_operation_finds_no_server_error_and_no_schema_violation(api_base, api_key):
    operations = {f"{op.ok().method.upper()} {op.ok().path}" for op in contract_schema().get_all_operations()}
    assert len(operations) == 44
    report = fuzz(api_base, api_key, examples=EXAMPLES, seed=SEED)
    print(summary(report))
    print("\n".join(report.samples.values()))
    assert report.operations == operations, operations - report.operations
    assert not report.server_errors, "\n".join(report.server_errors[:20])
    assert not report.schema_violations, "\n".join(report.schema_violations[:20])
