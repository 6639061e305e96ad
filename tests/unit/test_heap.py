"""assistants_project/heap.py: a started process's objects are frozen out of collections, and
the youngest generation waits for YOUNG_THRESHOLD allocations."""

from __future__ import annotations

import json
import subprocess
import sys

from assistants_project.heap import YOUNG_THRESHOLD


def test_start_up_objects_are_frozen_and_young_collections_come_later() -> None:
    probe = ("import gc, json; from assistants_project.heap import settle_after_start_up; "
             "settle_after_start_up(); print(json.dumps([gc.get_freeze_count(), gc.get_threshold()]))")
    frozen, threshold = json.loads(subprocess.run([sys.executable, "-c", probe], check=True,
                                                  capture_output=True, text=True).stdout)
    assert frozen > 1000
    assert threshold[0] == YOUNG_THRESHOLD
