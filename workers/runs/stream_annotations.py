"""Annotations found while the answer streams. Text that may be the start of a marker is held
back until the marker is whole (or clearly is none), so that a marker and its annotation always
go out in one delta. Every scan starts at the text not yet sent, so a turn costs linear time."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

import regex  # installed with tiktoken; unlike `re` it tells a cut-off match from a mismatch

from apps.runs.models import Run
from workers.runs.hosted import Annotator, registered

# No marker is longer than this (a citation's file name is at most 255 characters, a sandbox
# path about as long): an opener followed by more text than this without a marker is plain text.
HOLD_LIMIT = 600


@cache
def _annotators() -> tuple[Annotator, ...]:
    # Every tool's markers, whatever the run's tools: text that looks like one is held back
    # until it is clearly whole or none, as for any run.
    return tuple(tool.annotator for tool in registered().values() if tool.annotator is not None)


class StreamAnnotations:
    def __init__(self) -> None:
        self._resolved: dict[int, Callable[[re.Match[str]], dict | None]] = {}

    def held_from(self, text: str, sent: int) -> int:
        """How far the text may go out now: up to the first marker that may still be arriving."""
        hold = len(text)
        window = max(sent, len(text) - HOLD_LIMIT)
        for annotator in _annotators():
            hold = min(hold, _partial_opener(text, sent, annotator.opener))
            position = text.find(annotator.opener, window)
            while position != -1 and position < hold:
                if _may_grow(annotator, text, position):
                    hold = position
                    break
                position = text.find(annotator.opener, position + 1)
        return hold

    def found(self, run: Run, text: str, start: int, end: int) -> list[dict]:
        """The annotations of the markers that lie in text[start:end], in text order."""
        found = []
        for number, annotator in enumerate(_annotators()):
            if annotator.opener not in text[start:end]:
                continue
            for match in annotator.pattern.finditer(text, start, end):
                if number not in self._resolved:
                    self._resolved[number] = annotator.resolve(run)
                fields = self._resolved[number](match)
                if fields is None:
                    continue
                kind = fields["type"]
                found.append({"type": kind, "text": match.group(0), kind: fields[kind],
                              "start_index": match.start(), "end_index": match.end()})
        found.sort(key=lambda annotation: annotation["start_index"])
        return found


def _partial_opener(text: str, sent: int, opener: str) -> int:
    """Where the text ends in the first characters of `opener` (the rest may come next)."""
    for size in range(min(len(opener) - 1, len(text) - sent), 0, -1):
        if text.endswith(opener[:size]):
            return len(text) - size
    return len(text)


@cache
def _partial_pattern(pattern: str):
    return regex.compile(pattern)


def _may_grow(annotator: Annotator, text: str, position: int) -> bool:
    """Whether more text could still make or change a marker at `position`: the text so far is
    a marker cut off, or a whole one that reaches the end and could go on (a file link ends at
    a space, not at a closing character). Text that can never become a marker goes out."""
    partial = _partial_pattern(annotator.pattern.pattern)
    match = partial.match(text, position, partial=True)
    if match is None:
        return False
    if match.partial:
        return True
    if match.end() < len(text):
        return False
    tail = text[position:]  # short: it holds one marker
    longer = partial.match(tail + "x")
    return longer is not None and longer.end() > len(tail)
