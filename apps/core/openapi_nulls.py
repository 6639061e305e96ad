"""`null` given for an optional field that the contract does not declare nullable means the
field is absent. The SDK's own models write every unset field as null on `model_dump()`, so a
client that reads an object (a thread's `tool_resources`, an assistant's `tools`) and posts it
back sends `{"file_search": null}` or `{"function": {"strict": null}}`: a read-modify-write of
our own objects must work. Nulls the contract does declare (`last_messages`, `metadata`, ...)
keep their meaning, and a null for a required field still fails validation."""

from __future__ import annotations

from collections.abc import Callable

Resolve = Callable[[str], dict]

_BRANCHES = ("anyOf", "oneOf", "allOf")


def drop_absent_nulls(schema: dict, instance: object, resolve: Resolve) -> None:
    """Remove, in place and at every depth, the null values `schema` does not admit for
    optional properties."""
    if isinstance(instance, dict):
        shapes = _object_shapes(schema, resolve, instance)
        for key in [k for k, v in instance.items() if v is None]:
            declaring = [s for s in shapes if key in (s.get("properties") or {})]
            if declaring and all(key not in (s.get("required") or []) and
                                 not _admits_null(s["properties"][key], resolve) for s in declaring):
                del instance[key]
        for key, value in instance.items():
            if isinstance(value, (dict, list)):
                for shape in shapes:
                    child = (shape.get("properties") or {}).get(key)
                    if child is not None:
                        drop_absent_nulls(child, value, resolve)
    elif isinstance(instance, list):
        for shape in _flatten(schema, resolve, None):
            items = shape.get("items")
            if isinstance(items, dict):
                for value in instance:
                    if isinstance(value, (dict, list)):
                        drop_absent_nulls(items, value, resolve)


def _flatten(schema: dict, resolve: Resolve, instance: object, depth: int = 0) -> list[dict]:
    """The schema and every alternative it offers, with references followed; for an object
    with a `type` discriminator, only the alternatives of that type."""
    if not isinstance(schema, dict) or depth > 16:
        return []
    if "$ref" in schema:
        schema = {**resolve(schema["$ref"]), **{k: v for k, v in schema.items() if k != "$ref"}}
    found = [schema]
    for keyword in _BRANCHES:
        branches = [_flatten(b, resolve, instance, depth + 1) for b in schema.get(keyword) or []]
        if keyword != "allOf" and isinstance(instance, dict) and isinstance(instance.get("type"), str):
            typed = [b for b in branches if any(_discriminates(s, instance["type"]) for s in b)]
            branches = typed or branches
        for branch in branches:
            found += branch
    return found


def _object_shapes(schema: dict, resolve: Resolve, instance: dict) -> list[dict]:
    return [s for s in _flatten(schema, resolve, instance) if "properties" in s]


def _discriminates(schema: dict, kind: str) -> bool:
    type_schema = (schema.get("properties") or {}).get("type") or {}
    return kind in (type_schema.get("enum") or []) or type_schema.get("const") == kind


def _admits_null(schema: dict, resolve: Resolve, depth: int = 0) -> bool:
    """Whether null satisfies `schema`: every constraint on the node must accept it."""
    if not isinstance(schema, dict) or depth > 16:
        return False
    if "$ref" in schema:
        schema = {**resolve(schema["$ref"]), **{k: v for k, v in schema.items() if k != "$ref"}}
    types = schema.get("type")
    if types is not None and types != "null" and not (isinstance(types, list) and "null" in types):
        return False
    if "enum" in schema and None not in schema["enum"]:
        return False
    if "const" in schema and schema["const"] is not None:
        return False
    if not all(_admits_null(b, resolve, depth + 1) for b in schema.get("allOf") or []):
        return False
    return all(any(_admits_null(b, resolve, depth + 1) for b in schema[keyword])
               for keyword in ("anyOf", "oneOf") if schema.get(keyword))
