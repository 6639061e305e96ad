"""The one cursor paginator, shared by every list endpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Model, Q, QuerySet

from apps.core.errors import InvalidRequestError
from apps.core.models import deleted_position


@dataclass(frozen=True)
class ListRules:
    default_limit: int = 20
    max_limit: int = 100
    allow_before: bool = True


STANDARD = ListRules()
FILES = ListRules(default_limit=10_000, max_limit=10_000, allow_before=False)


def _parse_limit(raw: str | None, rules: ListRules) -> int:
    if raw is None or raw == "":
        return rules.default_limit
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidRequestError(
            "Invalid type for 'limit': expected an integer, but got a string instead.",
            param="limit",
            code="invalid_type",
        ) from None
    if limit > rules.max_limit:
        raise InvalidRequestError(
            "Invalid 'limit': integer above maximum value. "
            f"Expected a value <= {rules.max_limit}, but got {limit} instead.",
            param="limit",
            code="integer_above_max_value",
        )
    if limit < 1:
        raise InvalidRequestError(
            f"Invalid 'limit': integer below minimum value. Expected a value >= 1, but got {limit} instead.",
            param="limit",
            code="integer_below_min_value",
        )
    return limit


def _parse_order(raw: str | None) -> str:
    if raw is None or raw == "":
        return "desc"
    if raw not in ("asc", "desc"):
        raise InvalidRequestError(
            f"Invalid value: '{raw}'. Supported values are: 'asc' and 'desc'.",
            param="order",
            code="invalid_value",
        )
    return raw


def _cursor_filter(queryset: QuerySet, param: str, cursor_id: str, newer: bool, field: str,
                   project_id: str | None) -> Q:
    anchor = queryset.filter(**{field: cursor_id}).values_list("created_ns", flat=True).first()
    if anchor is None and project_id:
        anchor = deleted_position(queryset.model, project_id, cursor_id)
    if anchor is None:
        raise InvalidRequestError(
            f"Invalid '{param}': no object with id '{cursor_id}' was found in this list.",
            param=param,
            code="invalid_value",
        )
    if newer:
        return Q(created_ns__gt=anchor) | Q(created_ns=anchor, **{f"{field}__gt": cursor_id})
    return Q(created_ns__lt=anchor) | Q(created_ns=anchor, **{f"{field}__lt": cursor_id})


def paginate(
    query_params,
    queryset: QuerySet,
    render: Callable[[Model], dict],
    rules: ListRules = STANDARD,
    cursor_field: str = "pk",
    project_id: str | None = None,
) -> dict:
    """A list page: {"object":"list","data","first_id","last_id","has_more"}.

    Ordered by creation (`created_ns`, then the public id in `cursor_field`); `after` moves away
    from the first item in the chosen order and `before` toward it, as OpenAI's lists do. A
    cursor the caller's project (`project_id`) deleted lately still marks its place."""
    limit = _parse_limit(query_params.get("limit"), rules)
    order = _parse_order(query_params.get("order"))
    after = query_params.get("after") or None
    before = query_params.get("before") or None if rules.allow_before else None

    ascending = order == "asc"
    page = queryset
    if after:
        page = page.filter(_cursor_filter(queryset, "after", after, ascending, cursor_field, project_id))
    if before:
        page = page.filter(_cursor_filter(queryset, "before", before, not ascending, cursor_field,
                                         project_id))

    if before and not after:
        # Walk backwards from the cursor, then restore the requested order.
        reverse = ("created_ns", cursor_field) if not ascending else ("-created_ns", f"-{cursor_field}")
        rows = list(page.order_by(*reverse)[: limit + 1])
        has_more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
    else:
        ordering = ("created_ns", cursor_field) if ascending else ("-created_ns", f"-{cursor_field}")
        rows = list(page.order_by(*ordering)[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]

    data = [render(row) for row in rows]
    # The schema declares first_id/last_id as (non-null) strings: an empty page says "".
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else "",
        "last_id": data[-1]["id"] if data else "",
        "has_more": has_more,
    }
