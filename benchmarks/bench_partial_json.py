"""Why workers/runs/partial_json.py is kept over jiter's partial mode: the Code Interpreter's
`input` arrives a few characters per delta, and jiter can only re-parse the whole growing
prefix each time. Prints both readers' total time per argument size.

    .venv/bin/python benchmarks/bench_partial_json.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jiter  # noqa: E402

from workers.runs.partial_json import StreamedStringField  # noqa: E402

DELTA_CHARS = 8  # about what an upstream sends per tool-call argument delta


def main() -> None:
    for size in (10_000, 50_000, 100_000):
        code = ("x = 1\n" * (size // 6 + 1))[:size]
        document = json.dumps({"input": code})
        deltas = [document[i:i + DELTA_CHARS] for i in range(0, len(document), DELTA_CHARS)]

        started = time.perf_counter()
        field = StreamedStringField("input")
        for delta in deltas:
            field.feed(delta)
        ours = time.perf_counter() - started
        assert field.value == code

        started = time.perf_counter()
        prefix = ""
        for delta in deltas:
            prefix += delta
            value = jiter.from_json(prefix.encode(), partial_mode="trailing-strings").get("input", "")
        theirs = time.perf_counter() - started
        assert value == code
        print(f"{size:>7} chars in {len(deltas):>5} deltas: partial_json {ours * 1000:7.1f} ms, "
              f"jiter re-parse {theirs * 1000:7.1f} ms ({theirs / ours:.0f}x)")


if __name__ == "__main__":
    main()
