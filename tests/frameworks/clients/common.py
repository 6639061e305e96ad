"""Shared by the framework client scripts (run in the frameworks' own virtualenvs, not ours):
read the settings the test passes, run each scenario, print one JSON line of outcomes."""

from __future__ import annotations

import asyncio
import json
import sys
import traceback


def settings() -> dict:
    with open(sys.argv[1]) as handle:
        return json.load(handle)


def run_scenarios(scenarios: dict) -> None:
    """Each scenario is a function (sync or async) returning a JSON-able dict; a failure is
    reported as that scenario's outcome, so each test shows its own error."""
    outcomes = {}
    for name, scenario in scenarios.items():
        try:
            result = scenario()
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
            outcomes[name] = {"ok": True, **result}
        except BaseException:  # noqa: BLE001 - reported to the test, which fails with it
            outcomes[name] = {"ok": False, "error": traceback.format_exc()}
    print(json.dumps(outcomes))
