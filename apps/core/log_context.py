"""What a log line is about: the request, project, thread and run it was written for. Web sets
them per request, workers per task (the request id travels in the task's headers), and every
record carries them, so with LOG_FORMAT=json an operator can follow one run across processes."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

FIELDS = ("request_id", "project", "thread_id", "run_id")
_context: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(name, default=None) for name in FIELDS
}
# Object-id prefixes that name a field when a task is called with that id.
_ID_PREFIXES = {"run_": "run_id", "thread_": "thread_id"}


def bind(**values: str | None) -> None:
    for name, value in values.items():
        _context[name].set(value)


def current() -> dict[str, str]:
    return {name: value for name, var in _context.items() if (value := var.get()) is not None}


def clear() -> None:
    for var in _context.values():
        var.set(None)


@contextmanager
def bound(**values: str | None) -> Iterator[None]:
    tokens = {name: _context[name].set(value) for name, value in values.items()}
    try:
        yield
    finally:
        for name, token in tokens.items():
            _context[name].reset(token)


def ids_in(values: object) -> dict[str, str]:
    """The thread and run ids among a task's arguments or a URL's kwargs."""
    found: dict[str, str] = {}
    items = values.values() if isinstance(values, dict) else values
    for value in items or ():
        if isinstance(value, str):
            for prefix, name in _ID_PREFIXES.items():
                if value.startswith(prefix):
                    found.setdefault(name, value)
    return found


class ContextFilter(logging.Filter):
    """Puts the bound ids on every record (as attributes, for any formatter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the bound ids, and any extra
    fields a caller passed (`logger.warning(..., extra={"attempt": 2})`)."""

    _standard = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in self._standard and not name.startswith("_"):
                line[name] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)
