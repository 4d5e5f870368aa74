"""`/healthz`, `/readyz` and `/metrics`, answered before any other middleware: a probe or a
scrape comes from the cluster with the pod's address as its host and over plain HTTP, so it
must pass neither the host check nor the HTTPS redirect, and it needs no session, no sign-in and
no access log.

- `/healthz`: the process answers (liveness); it touches nothing else.
- `/readyz`: the process can do its work (readiness): each check of `checks.READINESS`, run
  concurrently with django-health-check's time limits; 200 when all pass, else 503 naming each
  failing check and why.
- `/metrics`: Prometheus' text (operations.metrics), for the scraper's token or network only:
  401 without them, 403 while the server has neither set.
"""

import asyncio
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers
from prometheus_client import CONTENT_TYPE_LATEST

from tessera.operations import metrics
from tessera.operations.checks import READINESS

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"


def readiness() -> dict[str, str]:
    """Each readiness check's name → "ok", or why it failed."""

    async def run_all():
        return await asyncio.gather(*(check.get_result() for check in READINESS.values()))

    results = asyncio.run(run_all())
    return {
        name: str(result.error.message) if result.error else "ok"
        for name, result in zip(READINESS, results, strict=True)
    }


class ProbeMiddleware:
    """First in MIDDLEWARE: answers the two probe paths itself."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info.rstrip("/")
        if path == LIVENESS_PATH:
            response = JsonResponse({"status": "alive"})
        elif path == READINESS_PATH:
            checks = readiness()
            ready = all(outcome == "ok" for outcome in checks.values())
            response = JsonResponse(
                {"status": "ready" if ready else "not ready", "checks": checks},
                status=200 if ready else 503,
            )
        elif path == METRICS_PATH:
            response = _metrics(request)
        else:
            return self.get_response(request)
        add_never_cache_headers(response)
        return response


def _metrics(request: HttpRequest) -> HttpResponse:
    allowed = metrics.allowed(request)
    if allowed is None:
        return JsonResponse(
            {"detail": "metrics are off: set TESSERA_METRICS_TOKEN or TESSERA_METRICS_NETWORKS"},
            status=403,
        )
    if not allowed:
        response = JsonResponse(
            {"detail": "metrics need the scraper's token: Authorization: Bearer <token>"},
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
