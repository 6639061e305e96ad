"""OpenAI's wording for schema violations, e.g. "Invalid 'name': string too long. Expected a
string with maximum length 256, but got a string with length 257 instead."."""

from __future__ import annotations

_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
    "object": "an object", "array": "an array", "null": "null",
}


def param_path(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def json_type_name(value: object) -> str:
    """The JSON type of a parsed value, in words ("an object", "null"), never Python's."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _expected(types) -> str:
    if isinstance(types, str):
        return _TYPE_NAMES.get(types, types)
    names = [_TYPE_NAMES.get(t, t) for t in types]
    return "one of " + " or ".join(names)


def json_text(value: object) -> str:
    """A value as the client wrote it: strings as they are, anything else as JSON (`null`,
    `true`, `{"a": 1}`), so no message ever shows a Python repr."""
    if isinstance(value, str):
        return value
    import json

    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 200 else text[:200] + "…"


def _quote_values(values) -> str:
    quoted = [f"'{json_text(v)}'" for v in values if v is not None]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _branch_types(schema: dict) -> list[str]:
    type_schema = (schema.get("properties") or {}).get("type") or {}
    if "enum" in type_schema:
        return list(type_schema["enum"])
    if "const" in type_schema:
        return [type_schema["const"]]
    return []


class _DiscriminatorError:
    """`{"type": "bogus"}` against tool/content alternatives: say which types exist."""

    validator = "enum"

    def __init__(self, error, allowed: list[str]) -> None:
        self.absolute_path = [*error.absolute_path, "type"]
        self.validator_value = allowed
        self.instance = error.instance.get("type")
        self.context = None
        self.parent = None
        self.schema_path = []
        self.schema = {}
        self.message = ""


def _flatten_alternatives(error):
    """For an anyOf/oneOf failure, the branch errors worth reporting: the branch named by the
    instance's `type` discriminator when there is one; if every branch failed on type alone,
    one combined type error; otherwise the most specific branch error."""
    from jsonschema.exceptions import best_match

    context = list(error.context or [])
    if not context:
        return error, None
    if isinstance(error.instance, dict) and "type" in error.instance:
        branches = error.validator_value
        resolver_free = [b for b in branches if isinstance(b, dict) and "$ref" not in b]
        if len(resolver_free) == len(branches):
            allowed = [t for branch in branches for t in _branch_types(branch)]
            if allowed and error.instance["type"] not in allowed:
                return _DiscriminatorError(error, allowed), None
        matching = {index for index, branch in enumerate(branches)
                    if error.instance["type"] in _branch_types(_resolved(error, branch))}
        if matching:
            chosen = [e for e in context if e.relative_schema_path[0] in matching]
            if chosen:
                return best_match(chosen), None
        allowed = [t for branch in branches for t in _branch_types(_resolved(error, branch))]
        if allowed and error.instance["type"] not in allowed:
            return _DiscriminatorError(error, allowed), None
    same_place = [e for e in context if list(e.path) == []]
    if same_place and all(e.validator == "type" for e in same_place) and len(same_place) == len(context):
        types: list[str] = []
        for branch in same_place:
            value = branch.validator_value
            types += [value] if isinstance(value, str) else list(value)
        return error, types
    deeper = best_match(context)
    return deeper, None


def _resolved(error, branch: dict) -> dict:
    ref = branch.get("$ref") if isinstance(branch, dict) else None
    if not ref:
        return branch if isinstance(branch, dict) else {}
    from apps.core.openapi import load_spec

    node: object = load_spec()
    for part in ref.split("#", 1)[1].strip("/").split("/"):
        node = node[part]  # type: ignore[index]
    return node if isinstance(node, dict) else {}


def describe_error(error) -> tuple[str, str | None, str]:
    combined_types = None
    while error.validator in ("anyOf", "oneOf") and error.context:
        error, combined_types = _flatten_alternatives(error)
        if combined_types is not None:
            break
    path = list(error.absolute_path)
    param = param_path(path) or None
    name = param or "body"
    kind = error.validator
    value = error.validator_value
    instance = error.instance

    if "propertyNames" in error.schema_path:
        return (f"Invalid '{name}': key '{instance}' is too long. Expected a key with maximum "
                f"length {value}, but got a key with length {len(instance)} instead.",
                param, "string_above_max_length")
    if combined_types is not None:
        return (f"Invalid type for '{name}': expected {_expected(combined_types)}, but got "
                f"{json_type_name(instance)} instead.", param, "invalid_type")
    if kind == "additionalProperties":
        allowed = set((error.schema.get("properties") or {}).keys())
        extra = sorted(key for key in instance if key not in allowed)
        if extra and value is False:
            unknown = param_path([*path, extra[0]])
            return f"Unknown parameter: '{unknown}'.", unknown, "unknown_parameter"
    if kind == "required":
        missing = [key for key in value if key not in instance]
        target = param_path([*path, missing[0]]) if missing else name
        return f"Missing required parameter: '{target}'.", target, "missing_required_parameter"
    if kind == "type":
        return (f"Invalid type for '{name}': expected {_expected(value)}, but got "
                f"{json_type_name(instance)} instead.", param, "invalid_type")
    if kind == "maxLength":
        return (f"Invalid '{name}': string too long. Expected a string with maximum length "
                f"{value}, but got a string with length {len(instance)} instead.",
                param, "string_above_max_length")
    if kind == "minLength":
        return (f"Invalid '{name}': string too short. Expected a string with minimum length "
                f"{value}, but got a string with length {len(instance)} instead.",
                param, "string_below_min_length")
    if kind == "maxItems":
        return (f"Invalid '{name}': array too long. Expected an array with maximum length "
                f"{value}, but got an array with length {len(instance)} instead.",
                param, "array_above_max_length")
    if kind == "minItems":
        return (f"Invalid '{name}': array too short. Expected an array with minimum length "
                f"{value}, but got an array with length {len(instance)} instead.",
                param, "array_below_min_length")
    if kind in ("maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"):
        number = "integer" if isinstance(instance, int) else "decimal"
        above = kind.endswith("aximum")
        comparison = ("<" if kind == "exclusiveMaximum" else "<=") if above else (
            ">" if kind == "exclusiveMinimum" else ">=")
        direction = "above maximum" if above else "below minimum"
        return (f"Invalid '{name}': {number} {direction} value. Expected a value {comparison} "
                f"{json_text(value)}, but got {json_text(instance)} instead.",
                param, f"{number}_{'above_max' if above else 'below_min'}_value")
    if kind == "maxProperties":
        return (f"Invalid '{name}': too many properties. Expected an object with at most {value} "
                f"properties, but got an object with {len(instance)} properties instead.",
                param, "object_above_max_properties")
    if kind in ("enum", "const"):
        options = value if kind == "enum" else [value]
        return (f"Invalid value: '{json_text(instance)}'. Supported values are: "
                f"{_quote_values(options)}.", param, "invalid_value")
    if kind == "oneOf" and isinstance(instance, dict):
        # Several alternatives matched: the body mixes fields that exclude each other.
        given = [key for branch in value for key in (_resolved(error, branch).get("required") or [])
                 if key in instance]
        if len(given) > 1:
            return (f"Invalid '{name}': only one of {_quote_values(given).replace(' and ', ' or ')} "
                    "may be given.", param, "invalid_value")
    if kind == "oneOf":
        # Several alternatives accept the value (they only constrain objects): the value has
        # the wrong type for the field itself.
        expected = error.schema.get("type")
        if expected is not None:
            return (f"Invalid type for '{name}': expected {_expected(expected)}, but got "
                    f"{json_type_name(instance)} instead.", param, "invalid_type")
    if kind == "pattern" and name.endswith("image_url.url"):
        return (f"Invalid '{name}'. Expected a valid URL, but got a value with an invalid format.",
                param, "invalid_value")
    if kind == "pattern":
        return (f"Invalid '{name}': string does not match pattern. Expected a string that "
                f"matches the pattern '{value}'.", param, "invalid_value")
    return _other(kind, name, value, instance), param, "invalid_value"


def _other(kind: str, name: str, value: object, instance: object) -> str:
    """Keywords the contract hardly uses, in the API's words (never the validator's)."""
    if kind == "additionalProperties" and isinstance(instance, dict):
        return f"Invalid '{name}': the object has properties that are not allowed here."
    if kind == "uniqueItems":
        return f"Invalid '{name}': array items must be unique."
    if kind == "minProperties":
        return (f"Invalid '{name}': too few properties. Expected an object with at least "
                f"{json_text(value)} properties.")
    if kind == "multipleOf":
        return f"Invalid '{name}': expected a multiple of {json_text(value)}."
    if kind == "oneOf":
        return f"Invalid '{name}': the value matches more than one of the accepted forms."
    if kind in ("anyOf", "allOf", "not"):
        return f"Invalid '{name}': the value is not one of the accepted forms."
    return f"Invalid '{name}': the value is not valid here."
