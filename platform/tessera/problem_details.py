"""How Tessera tells a program what went wrong: RFC 9457 `application/problem+json` (type,
title, status, detail). Here, below every app, so that a middleware of any app (two-factor
sign-in, the request size limit) answers an API call as the API does; the API's exception
handler (tessera.api.problems) builds on it."""

from http import HTTPStatus

from django.http import JsonResponse

API_PREFIX = "/api/"
PROBLEM_TYPE = "urn:tessera:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_body(
    *, status_code: int, code: str, detail: str, title: str | None = None, **extra
) -> dict:
    return {
        "type": f"{PROBLEM_TYPE}{code}",
        "title": title or HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        **extra,
    }


def plain_problem_response(**problem) -> JsonResponse:
    """A problem answered outside DRF (a URL no route matches, a middleware)."""
    return JsonResponse(
        problem_body(**problem), status=problem["status_code"], content_type=PROBLEM_CONTENT_TYPE
    )
