"""A request larger than any upload Tessera accepts is refused from its Content-Length, before
a byte of its body is read or spooled to disk (a 2 GB "scan" costs nothing)."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat

from tessera.problem_details import API_PREFIX, plain_problem_response


class RequestSizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.TESSERA_MAX_REQUEST_BYTES:
            return too_large(request, limit=settings.TESSERA_MAX_REQUEST_BYTES)
        return self.get_response(request)


def too_large(request: HttpRequest, *, limit: int) -> HttpResponse:
    detail = f"the request is larger than the {filesizeformat(limit)} Tessera accepts"
    if request.path.startswith(API_PREFIX):
        return plain_problem_response(
            status_code=413, code="too_large", title="Content Too Large", detail=detail
        )
    return HttpResponse(detail.capitalize() + ".", status=413, content_type="text/plain")
