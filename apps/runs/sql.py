"""The run hot path's round trips: an UPDATE that hands back the rows it changed (no re-select),
and several statements sent to Postgres at once. Each statement is still built by the ORM, so
fields convert as they always do; only the sending is batched. A batch relies on psycopg's
client-side binding, Django's default for psycopg 3, which allows several statements in one
execute."""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection
from django.db.models import Model, QuerySet
from django.db.models.sql import InsertQuery, UpdateQuery

from apps.core.ids import new_id
from apps.core.sql import to_models

Statement = tuple[str, tuple]


def update_sql(queryset: QuerySet, values: dict) -> Statement:
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    sql, params = query.get_compiler(queryset.db).as_sql()
    return sql, tuple(params)


def insert_sql(obj: Model) -> Statement:
    """The INSERT of a new row, with its fields' defaults and pre-save values filled in."""
    meta = obj._meta
    if getattr(obj, "id_kind", "") and not obj.pk:
        obj.pk = new_id(obj.id_kind)  # what ProjectScoped.save would do
    fields = [field for field in meta.local_concrete_fields if not field.generated
              and not (field is meta.auto_field and obj.pk is None)]
    query = InsertQuery(type(obj))
    query.insert_values(fields, [obj], raw=False)
    ((sql, params),) = query.get_compiler(connection.alias).as_sql()
    return sql, tuple(params)


def _returning(model: type[Model]) -> tuple[str, list]:
    fields = list(model._meta.concrete_fields)
    quote = connection.ops.quote_name
    return " RETURNING " + ", ".join(quote(field.column) for field in fields), fields


def update_returning_sql(queryset: QuerySet, values: dict) -> tuple[Statement, list]:
    sql, params = update_sql(queryset, values)
    returning, fields = _returning(queryset.model)
    return (sql + returning, params), fields


def update_returning(queryset: QuerySet, extra: dict[str, str] | None = None, **values) -> list[Model]:
    """queryset.update(**values), handing back the changed rows as the UPDATE wrote them.
    `extra` names SQL expressions (over the updated table's columns) returned with each row,
    set on it as attributes of those names."""
    (sql, params), fields = update_returning_sql(queryset, values)
    names = list(extra or {})
    if names:
        sql += "".join(f", ({extra[name]})" for name in names)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    changed = to_models(queryset.model, fields, [row[:len(fields)] for row in rows])
    for obj, row in zip(changed, rows, strict=True):
        for name, value in zip(names, row[len(fields):], strict=True):
            setattr(obj, name, value)
    return changed


Then = Callable[[int, list[Model]], None]


class Batch:
    """Statements sent in one round trip, in order (atomically: outside a transaction Postgres
    runs them as one). After sending, each statement's `then` gets its row count and, for those
    added with `update_returning`, the rows it changed."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self._then: list[Then | None] = []
        self._returning: dict[int, tuple[type[Model], list]] = {}

    def __len__(self) -> int:
        return len(self.statements)

    def add(self, statement: Statement, then: Then | None = None) -> None:
        self.statements.append(statement)
        self._then.append(then)

    def update(self, queryset: QuerySet, then: Then | None = None, **values) -> None:
        self.add(update_sql(queryset, values), then)

    def update_returning(self, queryset: QuerySet, then: Then | None = None, **values) -> None:
        statement, fields = update_returning_sql(queryset, values)
        self._returning[len(self.statements)] = (queryset.model, fields)
        self.add(statement, then)

    def insert(self, obj: Model, then: Then | None = None) -> None:
        self.add(insert_sql(obj), then)

    def select(self, queryset: QuerySet, then: Then | None = None) -> None:
        sql, params = queryset.query.sql_with_params()
        self.add((sql, tuple(params)), then)

    def send(self) -> None:
        if not self.statements:
            return
        sql = ";\n".join(statement for statement, _ in self.statements)
        params = tuple(param for _, statement_params in self.statements for param in statement_params)
        results: list[tuple[int, list[Model]]] = []
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            raw = cursor.cursor
            for index in range(len(self.statements)):
                rows: list[Model] = []
                if index in self._returning:
                    model, fields = self._returning[index]
                    rows = to_models(model, fields, raw.fetchall())
                results.append((raw.rowcount, rows))
                if index < len(self.statements) - 1 and not raw.nextset():
                    raise RuntimeError("a batched statement returned no result")
        thens, self.statements, self._then, self._returning = self._then, [], [], {}
        for then, (count, rows) in zip(thens, results, strict=True):
            if then is not None:
                then(count, rows)
