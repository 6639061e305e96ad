"""Lookups made on every request or run, compiled once per process.

The ORM compiles each query afresh: about 250 µs for a select by key with one join, as much
as its round trip to Postgres. A lookup by equal columns has the same SQL every time; only its
values change, so `first_row` builds its statement once per shape and sends it as it is. Rows
come back as the ORM makes them: every field through its database converters."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from django.db import connection
from django.db.models import Field, Model

# What a statement reads, in its column order: each model's fields, and the foreign key it was
# reached by (None for the model looked up).
_Selected = tuple[tuple[type[Model], tuple[Field, ...], str | None], ...]


def to_models(model: type[Model], fields: list[Field], rows: Iterable[tuple]) -> list[Model]:
    """Instances of `model` from rows of `fields`' columns, as the ORM would build them."""
    converters = _converters(model, tuple(fields))
    names = [field.attname for field in fields]
    converted = []
    for row in rows:
        values = []
        for (column, steps), value in zip(converters, row, strict=True):
            for converter in steps:
                value = converter(value, column, connection)
            values.append(value)
        converted.append(model.from_db(connection.alias, names, values))
    return converted


@cache
def _converters(model: type[Model], fields: tuple[Field, ...]) -> tuple[tuple[object, tuple], ...]:
    """Each field's column and database converters: the same for every row, so found once."""
    found = []
    for field in fields:
        column = field.get_col(model._meta.db_table)
        found.append((column, tuple(connection.ops.get_db_converters(column)
                                    + field.get_db_converters(connection))))
    return tuple(found)


def _column(model: type[Model], name: str) -> Field:
    return model._meta.pk if name == "pk" else model._meta.get_field(name)


@cache
def _statement(model: type[Model], where: tuple[tuple[str, bool], ...], names: tuple[str, ...] | None,
               related: tuple[str, ...], for_update: bool) -> tuple[str, _Selected]:
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    own = tuple(_column(model, name) for name in names) if names else tuple(model._meta.concrete_fields)
    selected: list = [(model, own, None)]
    columns = [f"{table}.{quote(field.column)}" for field in own]
    joins = []
    for index, name in enumerate(related):
        foreign_key = model._meta.get_field(name)
        target = foreign_key.related_model
        alias = f"r{index}"
        joins.append(f" JOIN {quote(target._meta.db_table)} {alias} ON {alias}."
                     f"{quote(target._meta.pk.column)} = {table}.{quote(foreign_key.column)}")
        fields = tuple(target._meta.concrete_fields)
        selected.append((target, fields, name))
        columns += [f"{alias}.{quote(field.column)}" for field in fields]
    conditions = [f"{table}.{quote(_column(model, name).column)} = " + ("ANY(%s)" if many else "%s")
                  for name, many in where]
    lock = (f" FOR UPDATE OF {table}" if related else " FOR UPDATE") if for_update else ""
    sql = (f"SELECT {', '.join(columns)} FROM {table}{''.join(joins)} WHERE {' AND '.join(conditions)}"
           f" LIMIT 1{lock}")
    return sql, tuple(selected)


def first_row(model: type[Model], where: dict, *, names: tuple[str, ...] | None = None,
              related: tuple[str, ...] = (), for_update: bool = False) -> Model | None:
    """`model.objects.filter(**where).first()`, for a lookup that matches one row at most (the
    order is not set). A list, tuple or set value matches any of its values. `names` limits the
    columns read (the others are deferred); each of `related` is a foreign key whose row comes
    along, as select_related does. FOR UPDATE locks only the row of `model`."""
    shape = tuple((name, isinstance(value, list | tuple | set | frozenset)) for name, value in where.items())
    sql, selected = _statement(model, shape, names, related, for_update)
    params = []
    for (name, many), value in zip(shape, where.values(), strict=True):
        field = _column(model, name)
        params.append([field.get_db_prep_value(item, connection) for item in value] if many
                      else field.get_db_prep_value(value, connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    objects = []
    start = 0
    for target, fields, _ in selected:
        objects.append(to_models(target, list(fields), [row[start:start + len(fields)]])[0])
        start += len(fields)
    found = objects[0]
    for (_, _, name), related_object in zip(selected[1:], objects[1:], strict=True):
        model._meta.get_field(name).set_cached_value(found, related_object)
    return found
