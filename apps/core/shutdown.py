"""Web's graceful shutdown. On SIGTERM uvicorn stops accepting connections, waits for the open
ones for up to its --timeout-graceful-shutdown, then cuts them: an SSE stream of a run still
going would be cut mid-run, and an SDK client would see a dropped connection.

So the signal is noted here too. Open streams go on relaying for WEB_DRAIN_SECONDS (a run that
ends meanwhile ends its stream as always); then each stream still open ends with `done`, as a
stream does when its run waits on the caller (`requires_action`). The SDK returns normally with
the run as it last saw it; the run goes on in its worker, and the client follows it through
any other web process (retrieve or poll the run, list its messages).

uvicorn installs its own signal handlers (with signal.signal) before the ASGI lifespan starts;
at lifespan startup ours goes in front of its handler, which still does the rest."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Awaitable, Callable

from django.conf import settings

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]

_draining_since: float | None = None


def begin_drain() -> None:
    global _draining_since
    if _draining_since is None:
        _draining_since = time.monotonic()


def drain_deadline() -> float | None:
    """When (time.monotonic) streams still open must end; None while not shutting down."""
    if _draining_since is None:
        return None
    return _draining_since + settings.WEB_DRAIN_SECONDS


def _note_signals() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue  # not under uvicorn's handlers: nothing to chain to

        def handler(signum, frame, previous=previous) -> None:
            begin_drain()
            previous(signum, frame)

        signal.signal(sig, handler)


class Lifespan:
    """Answers the ASGI lifespan protocol (Django's handler does not speak it) and, at startup,
    chains the drain in front of the server's signal handlers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _note_signals()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
