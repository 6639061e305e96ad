"""Keeps `make run`'s processes alive the way an orchestrator would: a process that dies is
restarted after a backoff, and says so; one that keeps dying stops the stack, with its last
log lines, instead of flapping forever. Generic over what it watches: anything with a name,
a way to tell that it exited, a way to start it again and a log tail is a `Unit`."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger("stack.supervisor")

# A process dying this often within the window is broken, not unlucky.
GIVE_UP_DEATHS = 5
GIVE_UP_WINDOW_SECONDS = 60.0
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0
TAIL_LINES = 30


@dataclass
class Unit:
    name: str
    exit_code: Callable[[], int | str | None]  # None while it runs
    restart: Callable[[], None]
    tail: Callable[[int], list[str]] = lambda lines: []


class GaveUp(Exception):
    def __init__(self, name: str, deaths: int, tail: list[str]) -> None:
        super().__init__(f"{name} died {deaths} times within {GIVE_UP_WINDOW_SECONDS:.0f} s")
        self.name = name
        self.tail = tail


@dataclass
class _History:
    deaths: deque = field(default_factory=deque)
    restart_at: float | None = None


class Supervisor:
    def __init__(self, units: Callable[[], list[Unit]], say: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # Units are asked for on every pass, so a process added to the stack later (or taken
        # out of it by hand) is watched, or not, from then on.
        self._units = units
        self._say = say or logger.warning
        self._clock = clock
        self._history: dict[str, _History] = {}

    def backoff(self, deaths: int) -> float:
        return min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** max(0, deaths - 1))

    def check(self) -> None:
        """One pass: notice deaths, restart what is due. Raises GaveUp."""
        now = self._clock()
        for unit in self._units():
            history = self._history.setdefault(unit.name, _History())
            if history.restart_at is not None:
                if now >= history.restart_at:
                    history.restart_at = None
                    self._restart(unit, len(history.deaths))
                continue
            code = unit.exit_code()
            if code is None:
                continue
            history.deaths.append(now)
            while history.deaths and now - history.deaths[0] > GIVE_UP_WINDOW_SECONDS:
                history.deaths.popleft()
            if len(history.deaths) >= GIVE_UP_DEATHS:
                raise GaveUp(unit.name, len(history.deaths), unit.tail(TAIL_LINES))
            delay = self.backoff(len(history.deaths))
            history.restart_at = now + delay
            self._say(f"supervisor: {unit.name} exited with {code}; restarting in {delay:.1f} s "
                      f"({len(history.deaths)} death(s) in the last {GIVE_UP_WINDOW_SECONDS:.0f} s)")

    def _restart(self, unit: Unit, deaths: int) -> None:
        try:
            unit.restart()
        except Exception as error:  # noqa: BLE001 (a failed start is one more death, retried)
            self._say(f"supervisor: {unit.name} failed to start: {error}")
            history = self._history[unit.name]
            history.restart_at = self._clock() + self.backoff(deaths + 1)
            history.deaths.append(self._clock())
            if len(history.deaths) >= GIVE_UP_DEATHS:
                raise GaveUp(unit.name, len(history.deaths), unit.tail(TAIL_LINES)) from error
            return
        self._say(f"supervisor: {unit.name} restarted")
