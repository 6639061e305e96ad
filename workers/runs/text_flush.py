"""The text of the messages a worker process is streaming, saved to their rows about once a
second, for all its runs in one statement. Each run saving its own message after every second
of text cost a worker carrying 900 slow runs (a chunk a second each) 60% of its time: an ORM
update and a round trip per chunk.

What a run hands over here is progress only, overwritten by the closing write (which carries
the whole text and a status other than `in_progress`, so a late save finds nothing to change).
A run that ends early withdraws its pending save, waits for one under way, and saves its last
text itself (writer.TurnWriter.save_progress), so nothing older lands after it."""

from __future__ import annotations

import json
import logging
import threading
import time

from django.db import connection

from apps.runs.models import Run
from apps.runs.state import HOLDING_STATUSES
from apps.threads.models import Message

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
ROWS_PER_STATEMENT = 500


def _statement(rows: int) -> str:
    # Fenced as each run's own writes are: only while the attempt that streams the message
    # still holds the run, and only while the message is open.
    values = ", ".join(["(%s, %s, %s, %s)"] * rows)
    statuses = ", ".join(f"'{status}'" for status in HOLDING_STATUSES)
    return (f"UPDATE {Message._meta.db_table} AS m SET content = v.content::jsonb "
            f"FROM (VALUES {values}) AS v(id, content, run_id, attempts) "
            f"WHERE m.id = v.id AND m.status = 'in_progress' AND EXISTS ("
            f"SELECT 1 FROM {Run._meta.db_table} AS r WHERE r.id = v.run_id "
            f"AND r.attempts = v.attempts::integer AND r.status IN ({statuses}))")


class TextFlusher:
    def __init__(self) -> None:
        self._pending: dict[str, tuple[list, str, int]] = {}
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # held while a batch is written
        self._thread: threading.Thread | None = None

    def submit(self, message_id: str, content: list, run_id: str, attempt: int) -> None:
        """`content` (the message's parts so far, not changed after) is saved soon; a later
        submission replaces one not yet saved."""
        with self._lock:
            self._pending[message_id] = (content, run_id, attempt)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="text-flush", daemon=True)
                self._thread.start()

    def withdraw(self, message_id: str) -> None:
        """Once this returns, no save of the message's text is pending or under way."""
        with self._lock:
            self._pending.pop(message_id, None)
        with self._writing:
            pass

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            with self._writing:
                with self._lock:
                    batch, self._pending = self._pending, {}
                if batch:
                    self._write(batch)

    def _write(self, batch: dict[str, tuple[list, str, int]]) -> None:
        rows = [(message_id, json.dumps(content), run_id, attempt)
                for message_id, (content, run_id, attempt) in batch.items()]
        try:
            with connection.cursor() as cursor:
                for start in range(0, len(rows), ROWS_PER_STATEMENT):
                    part = rows[start:start + ROWS_PER_STATEMENT]
                    cursor.execute(_statement(len(part)), [value for row in part for value in row])
        except Exception:  # noqa: BLE001 (progress only: the closing writes carry the whole text)
            logger.warning("saving the text of %s streaming messages failed", len(rows), exc_info=True)
        finally:
            connection.close()  # back to the pool until the next second


_flusher = TextFlusher()


def flusher() -> TextFlusher:
    return _flusher
