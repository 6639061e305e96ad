"""Plain values between views and services. Views validate a request body, then pass the
fields it gave as keyword arguments; a modify leaves a field alone unless it was given."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final


class _Unset:
    """Not given (distinct from None, which clears a field)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final[Any] = _Unset()


def given(body: dict, names: Iterable[str]) -> dict:
    """The fields of `body` among `names` that the caller sent."""
    return {name: body[name] for name in names if name in body}
