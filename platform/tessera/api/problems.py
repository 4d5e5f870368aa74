"""Every error as RFC 9457 `application/problem+json`: type, title, status, detail, and the
field errors of a validation problem under `errors`."""

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat
from django.urls import Resolver404, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from tessera.problem_details import (
    API_PREFIX,
    PROBLEM_CONTENT_TYPE,
    plain_problem_response,
    problem_body,
)
from tessera.records.uploads import UploadRejected
from tessera.refusals import RefusalCode, Refused

logger = logging.getLogger("django.request")
UPLOAD_STATUS = {"too_large": 413, "content_type": 415}
# Any other refusal is a 400: the request itself needs changing.
REFUSAL_STATUS = {
    RefusalCode.POLICY: 403,
    RefusalCode.NO_MODEL: 409,
    RefusalCode.NOT_RETRYABLE: 409,
    RefusalCode.REJECTED: 409,
    RefusalCode.DUPLICATE: 409,
}


class Problem(exceptions.APIException):
    """A domain error: `code` names it (in `type`), `detail` is written for a person, and
    `technical_detail` (when there is one) is what a library reported, for an engineer."""

    def __init__(
        self, detail: str, *, code: str, status_code: int = 400, technical_detail: str = ""
    ) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status_code
        self.technical_detail = technical_detail


def problem_response(**problem) -> Response:
    """A problem answered by a DRF view."""
    return Response(
        problem_body(**problem), status=problem["status_code"], content_type=PROBLEM_CONTENT_TYPE
    )


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, Http404):
        return exceptions.NotFound("not found (or not visible to you)")
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    if isinstance(exc, RequestDataTooBig):
        limit = filesizeformat(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        return Problem(
            f"the request's fields are larger than the {limit} allowed; send files as files",
            code="too_large",
            status_code=413,
        )
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return Problem(str(exc), code="too_many_fields", status_code=400)
    if isinstance(exc, UploadRejected):
        return Problem(
            exc.message,
            code=exc.code,
            status_code=UPLOAD_STATUS.get(exc.code, 400),
            technical_detail=exc.technical_detail,
        )
    if isinstance(exc, Refused):
        return Problem(exc.message, code=exc.code, status_code=REFUSAL_STATUS.get(exc.code, 400))
    if isinstance(exc, IntegrityError):
        return Problem(
            "this conflicts with a record that already exists", code="conflict", status_code=409
        )
    return exc


def problem_exception_handler(exc: Exception, context: dict) -> Response | None:
    exc = _translate(exc)
    response = exception_handler(exc, context)
    if response is None:
        return None
    headers = {
        name: value
        for name, value in response.items()
        if name in ("WWW-Authenticate", "Retry-After", "Allow")
    }
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        problem = problem_response(
            status_code=status.HTTP_400_BAD_REQUEST,
            code="validation",
            title="Your request has invalid fields",
            detail=_summary(errors),
            errors=errors,
        )
    else:
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        technical = getattr(exc, "technical_detail", "")
        problem = problem_response(
            status_code=response.status_code,
            code=code if isinstance(code, str) else "error",
            detail=str(response.data.get("detail", "")) if isinstance(response.data, dict) else "",
            **({"technical_detail": technical} if technical else {}),
        )
    for name, value in headers.items():
        problem[name] = value
    return problem


def _summary(errors: dict) -> str:
    parts = []
    for field, messages in errors.items():
        text = messages[0] if isinstance(messages, list) and messages else messages
        parts.append(str(text) if field == "non_field_errors" else f"{field}: {text}")
    return "; ".join(parts)


@csrf_exempt  # it changes nothing: a POST to an unknown URL gets its 404, not a CSRF page
def unknown_endpoint(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """An /api/ URL that matches no route: a problem, whatever DEBUG says (Django's debug 404
    page would list every route)."""
    detail = "no such endpoint or object; see /api/v1/docs/"
    if not request.path.endswith("/") and _is_endpoint(f"{request.path}/"):
        detail = f"no such endpoint: API paths end with a slash ({request.path}/)"
    return plain_problem_response(status_code=404, code="not_found", detail=detail)


def _is_endpoint(path: str) -> bool:
    try:
        return resolve(path).func is not unknown_endpoint
    except Resolver404:
        return False


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A URL that matches no route: under /api/ a problem, like every other API error."""
    if request.path.startswith(API_PREFIX):
        return unknown_endpoint(request)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return internal_error_response()
    return defaults.server_error(request)


def internal_error_response() -> HttpResponse:
    return plain_problem_response(
        status_code=500,
        code="error",
        detail="something went wrong on our side; the error was logged",
    )


class ApiErrorMiddleware:
    """An exception no view handled, under /api/: a logged 500 problem, whatever DEBUG says
    (Django's debug page would show settings and code to an API client)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        logger.error(
            "Internal Server Error: %s",
            request.path,
            exc_info=exception,
            extra={"status_code": 500},
        )
        return internal_error_response()
