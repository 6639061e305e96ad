"""Validation driven by the official OpenAPI document (apps/core/spec/assistants.openapi.yaml,
a verbatim copy of OpenAI's): request bodies are checked against the spec's request
schemas, so every limit and `additionalProperties: false` comes from the contract itself, and
failures are reported in OpenAI's wording. Tests use the same document to check responses."""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path

from apps.core.errors import InvalidRequestError
from apps.core.openapi_messages import describe_error, json_type_name
from apps.core.openapi_nulls import drop_absent_nulls

SPEC_PATH = Path(__file__).resolve().parent / "spec" / "assistants.openapi.yaml"
BASE_URI = "urn:assistants-spec"


@cache
def load_spec() -> dict:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open() as handle:
        spec = yaml.load(handle, Loader=loader)
    _normalise(spec)
    _apply_decisions(spec)
    return spec


def _apply_decisions(spec: dict) -> None:
    """Where the document contradicts itself, the decision recorded in spec/DECISIONS.md: an
    upload may say `purpose: "evals"`, and the file object echoes it, as OpenAI's API does."""
    purpose = spec["components"]["schemas"]["OpenAIFile"]["properties"]["purpose"]
    if "evals" not in purpose["enum"]:
        purpose["enum"].append("evals")


def _normalise(node: object) -> None:
    """Turn the document's OpenAPI-isms into plain JSON Schema 2020-12: CompoundFilter's draft
    2019-09 `$recursiveRef` becomes a `$ref`, and 3.0-style `nullable: true` admits null."""
    if isinstance(node, dict):
        node.pop("$recursiveAnchor", None)
        if node.get("$recursiveRef") == "#":
            del node["$recursiveRef"]
            node["$ref"] = "#/components/schemas/CompoundFilter"
        members = node.get("allOf")
        if isinstance(members, list) and any(
                isinstance(m, dict) and m.get("nullable") is True and "type" not in m for m in members):
            # `allOf: [{$ref}, {nullable: true}]`: the referenced schema, or null.
            node["allOf"] = [m for m in members if not (isinstance(m, dict) and m.get("nullable") is True
                                                        and "type" not in m)]
            node["nullable"] = True
        if node.pop("nullable", False) is True:
            _admit_null(node)
        for value in node.values():
            _normalise(value)
    elif isinstance(node, list):
        for value in node:
            _normalise(value)


def _admit_null(node: dict) -> None:
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        node["type"] = [*types, "null"] if "null" not in types else types
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
    else:
        branch = {key: node.pop(key) for key in list(node) if key in ("$ref", "allOf", "anyOf", "oneOf")}
        node["anyOf"] = [branch, {"type": "null"}]


def _request_patches(spec: dict) -> dict:
    """Limits the spec states only in its descriptions (`Metadata`, `FunctionObject.name`), not
    as schema keywords: metadata is at most 16 pairs with keys ≤ 64 and values ≤ 512
    characters; a function name is a-z, A-Z, 0-9, underscores and dashes, at most 64
    characters, and so is a json_schema response format's name."""
    patched = copy.deepcopy(spec)
    schemas = patched["components"]["schemas"]
    metadata = schemas["Metadata"]["anyOf"][0]
    metadata["maxProperties"] = 16
    metadata["propertyNames"] = {"maxLength": 64}
    metadata["additionalProperties"] = {"type": "string", "maxLength": 512}
    for name in (schemas["FunctionObject"]["properties"]["name"],
                 schemas["ResponseFormatJsonSchema"]["properties"]["json_schema"]["properties"]["name"]):
        name["maxLength"] = 64
        name["pattern"] = "^[a-zA-Z0-9_-]+$"
    # Modifying takes only `vector_store_ids`: the `vector_stores` helper is for creation.
    for request in ("ModifyAssistantRequest", "ModifyThreadRequest"):
        resources = schemas[request]["properties"]["tool_resources"]["anyOf"][0]["properties"]
        for tool in resources.values():
            tool["additionalProperties"] = False
    # An image URL is an absolute http(s) URL (or an inline data URL), as `format: uri` says.
    image_url = schemas["MessageContentImageUrlObject"]["properties"]["image_url"]
    image_url["properties"]["url"]["pattern"] = "^(https?://[^\\s]+|data:image/[a-z]+;base64,.+)$"
    _bound_integers(patched)
    return patched


INT64_MAX = 2**63 - 1


def _bound_integers(node: object) -> None:
    """An integer the document leaves unbounded (`max_prompt_tokens`, `chunk_overlap_tokens`,
    `last_messages`, ...) is held to what a 64-bit column stores: past it the caller gets the
    usual "integer above maximum value" 400 with the bound, never an overflow in the database."""
    if isinstance(node, dict):
        types = node.get("type")
        if types == "integer" or (isinstance(types, list) and "integer" in types):
            node.setdefault("maximum", INT64_MAX)
            node.setdefault("minimum", -INT64_MAX - 1)
        for value in node.values():
            _bound_integers(value)
    elif isinstance(node, list):
        for value in node:
            _bound_integers(value)


@cache
def _request_spec() -> dict:
    return _request_patches(load_spec())


def _request_ref(ref: str) -> dict:
    node: object = _request_spec()
    for part in ref.split("#", 1)[1].strip("/").split("/"):
        node = node[part]  # type: ignore[index]
    return node if isinstance(node, dict) else {}


@cache
def _registry(kind: str):
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    spec = load_spec() if kind == "response" else _request_spec()
    return Registry().with_resource(BASE_URI, Resource(contents=spec, specification=DRAFT202012))


@cache
def _validator(kind: str, schema_name: str):
    from jsonschema import Draft202012Validator

    return Draft202012Validator(
        {"$ref": f"{BASE_URI}#/components/schemas/{schema_name}"}, registry=_registry(kind)
    )


def validate_request(schema_name: str, body: object) -> None:
    """Raise InvalidRequestError naming the offending field when `body` breaks the schema.
    Nulls that stand for absent optional fields are removed from `body` first."""
    if not isinstance(body, dict):
        raise InvalidRequestError(
            f"Invalid type for request body: expected an object, but got {json_type_name(body)} "
            "instead.",
            code="invalid_type",
        )
    drop_absent_nulls({"$ref": f"#/components/schemas/{schema_name}"}, body, _request_ref)
    from jsonschema.exceptions import best_match

    error = best_match(_validator("request", schema_name).iter_errors(body), key=_relevance)
    if error is not None:
        message, param, code = describe_error(error)
        raise InvalidRequestError(message, param=param, code=code)
    _integers_from_floats(schema_name, body)


def _has_integral_float(node: object) -> bool:
    if isinstance(node, float):
        return node.is_integer()
    if isinstance(node, dict):
        return any(_has_integral_float(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_integral_float(value) for value in node)
    return False


@cache
def _strict_integer_validator(schema_name: str):
    """The request validator, except that `5.0` is not an integer: its type errors point at
    every place where the schema wanted an integer and the body sent an integral float."""
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool))
    strict = validators.extend(Draft202012Validator, type_checker=checker)
    return strict({"$ref": f"{BASE_URI}#/components/schemas/{schema_name}"},
                  registry=_registry("request"))


def _integers_from_floats(schema_name: str, body: dict) -> None:
    """JSON Schema calls `5.0` an integer, so it passed validation; from here on it is the int
    5 (`max_num_results` slices a list, `last_messages` is echoed back). Changes `body` in place."""
    if not _has_integral_float(body):
        return
    pending = list(_strict_integer_validator(schema_name).iter_errors(body))
    while pending:
        error = pending.pop()
        pending.extend(error.context or [])
        wanted = error.validator_value if error.validator == "type" else None
        wants_integer = wanted == "integer" or (isinstance(wanted, list) and "integer" in wanted)
        if not (wants_integer and isinstance(error.instance, float) and error.instance.is_integer()):
            continue
        path = list(error.absolute_path)
        if not path:
            continue
        container: object = body
        for part in path[:-1]:
            container = container[part]  # type: ignore[index]
        container[path[-1]] = int(error.instance)  # type: ignore[index]


def _relevance(error):
    from jsonschema.exceptions import relevance

    # Prefer the deepest, most specific complaint: "tools[0].function.name is too long"
    # over "tools[0] is not valid under any of the given schemas".
    return relevance(error)


def response_errors(schema_name: str, instance: object) -> list[str]:
    validator = _validator("response", schema_name)
    problems = []
    for error in validator.iter_errors(instance):
        location = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        problems.append(f"{location or '<root>'}: {error.message[:300]}")
    return problems


@cache
def _path_table() -> list[tuple[re.Pattern, str]]:
    table = []
    for template in load_spec()["paths"]:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        table.append((re.compile(f"^{pattern}$"), template))
    # Literal segments beat parameters: /threads/runs before /threads/{thread_id}.
    table.sort(key=lambda item: item[1].count("{"))
    return table


def _operation(method: str, path: str) -> dict | None:
    path = path.split("?", 1)[0]
    if path.startswith("/v1/"):
        path = path[3:]
    for pattern, template in _path_table():
        if pattern.match(path):
            return load_spec()["paths"][template].get(method.lower())
    return None


def _schema_name(content: dict | None, media: str) -> str | None:
    schema = ((content or {}).get(media) or {}).get("schema") or {}
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else None


def response_schema_for(method: str, path: str) -> str | None:
    operation = _operation(method, path)
    if operation is None:
        return None
    return _schema_name(operation.get("responses", {}).get("200", {}).get("content"),
                        "application/json")
