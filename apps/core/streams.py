"""Responses that stream (SSE relays, file downloads) hold no database connection while they
stream: the pool is small (DB_POOL_MAX_SIZE per process), and a stream can last many minutes,
so one held connection per open stream would stall every other request once the pool is spent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from asgiref.sync import sync_to_async
from django.db import connections
from django.http import StreamingHttpResponse


async def _without_database(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    # This runs after the view and every middleware are done with the request, and, being
    # thread-sensitive, on the request's own thread, where its connection lives: closing it
    # hands it back to the pool before the first byte streams.
    await sync_to_async(connections.close_all)()
    async with aclosing(chunks) as inner:
        async for chunk in inner:
            yield chunk


def streaming_response(chunks: AsyncIterator[bytes], content_type: str) -> StreamingHttpResponse:
    return StreamingHttpResponse(_without_database(chunks), content_type=content_type)
