"""The cyclic garbage collector's settings for the long-running processes (web, workers).

With a thousand runs in flight a process tracks half a million objects, and each full
collection scanned all of them, holding every thread of the process: pauses of 0.1-0.5 s every
2-4 s in both web and the runs worker, which a client saw as a stalled stream or a slow `GET`.
So, once a process has started:
- what start-up created is frozen: modules, settings and caches live as long as the process,
  and no collection scans them again;
- the youngest generation is collected after ten times Python's default of allocations, so
  objects that live for one request or one chunk are freed by reference counting rather than
  scanned, and full collections come about ten times less often. Garbage in cycles is still
  found, only later: it costs memory, never correctness."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 7_000  # Python's default: 700


def settle_after_start_up() -> None:
    gc.collect()  # start-up's own garbage is freed, not frozen with the rest
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
