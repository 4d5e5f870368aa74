"""OpenAPI post-processing: every operation documents the problems it can answer with, in the
one shape they all share (RFC 9457), so a generated client knows what to expect; and a text
field that may be blank says so in a way that a blank value satisfies."""

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details; `errors` holds the field errors of a 400.",
    "properties": {
        "type": {"type": "string", "example": "urn:tessera:problem:validation"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "technical_detail": {
            "type": "string",
            "description": "What a decoder or library reported, for the integration engineer.",
        },
        "errors": {"type": "object", "additionalProperties": True},
    },
    "required": ["type", "title", "status", "detail"],
}
ANY_REQUEST = {
    "400": "The request is invalid: see `detail` and `errors`.",
    "401": "No valid token or session.",
    "403": "Your role in this organization does not allow this.",
    "404": "Not found, or not visible to you.",
    "406": "The response cannot be given in the format asked for by `Accept`.",
    "429": "Too many requests: wait for `Retry-After` seconds.",
}
WITH_BODY = {
    "413": "The request or the file is too large.",
    "415": "The body's content type is not one this endpoint reads.",
}


def add_problem_responses(result: dict, generator, request, public) -> dict:
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM
    content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            expected = dict(ANY_REQUEST)
            if method in ("post", "put", "patch"):
                expected |= WITH_BODY
            if method in ("post", "put", "patch", "delete"):
                expected["409"] = "This conflicts with the record's current state."
            for code, description in expected.items():
                responses.setdefault(code, {"description": description})
            for code, response in responses.items():
                if code.startswith(("4", "5")):
                    response["content"] = content
    return result


BLANK = {"type": "string", "maxLength": 0}


def blank_or_valid(result: dict, generator, request, public) -> dict:
    """drf-spectacular writes a blank-allowed text field that has a pattern as `oneOf` [the
    pattern, blank]; when the pattern also accepts "" (a name may be blank), "" satisfies both
    and so breaks `oneOf`. Either one will do: `anyOf`."""
    for component in result.get("components", {}).get("schemas", {}).values():
        for field in component.get("properties", {}).values():
            alternatives = field.get("oneOf")
            if alternatives and BLANK in alternatives and len(alternatives) == 2:
                field["anyOf"] = field.pop("oneOf")
    return result
