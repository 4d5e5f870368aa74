"""Optional telemetry for the IT team, off unless configured, scrubbed of what records hold:

- OpenTelemetry traces (TESSERA_OTEL_ENDPOINT, an OTLP/HTTP collector's base URL): Django's
  requests, Celery's tasks and psycopg's queries, as service TESSERA_OTEL_SERVICE. A span keeps
  a request's path (ids, never names) but no query string (a search may name a person); a query
  keeps its statement with placeholders, never its parameters; an exception keeps its type and
  stack, not its message.
- Sentry (TESSERA_SENTRY_DSN): errors with their stack, never local variables, request bodies,
  query strings, cookies, the user, the command line, or the exception's message (which may
  quote what was typed).

Both start once per process: the web (tessera.wsgi) and each worker (tessera.celery)."""

import logging
import re
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

logger = logging.getLogger(__name__)
REDACTED = "(redacted)"
# span attributes that carry a request's URL: kept without their query string
URL_ATTRIBUTES = ("http.url", "http.target", "url.full")
QUERY_ATTRIBUTES = ("url.query",)
# a traceback's "SomeError: what it said" lines (its own and those it was raised from)
EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*): .*$", re.MULTILINE)
KEPT_HEADERS = {"user-agent", "x-request-id", "content-type", "content-length"}
_started = False


def start_telemetry() -> None:
    """Start what is configured; idempotent."""
    global _started
    if _started:
        return
    _started = True
    if settings.TESSERA_OTEL_ENDPOINT:
        _start_tracing()
    if settings.TESSERA_SENTRY_DSN:
        _start_sentry()


def without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _start_tracing() -> None:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    class ScrubbingExporter(SpanExporter):
        """Hands the collector each span with its URLs cut before the query string (the
        instrumentations set them at any point of the span's life) and its exceptions without
        their messages."""

        def __init__(self, exporter: SpanExporter) -> None:
            self.exporter = exporter

        def export(self, spans):
            return self.exporter.export([_scrubbed(span) for span in spans])

        def shutdown(self) -> None:
            self.exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return self.exporter.force_flush(timeout_millis)

    def _event(event: Event) -> Event:
        attributes = dict(event.attributes or {})
        if "exception.message" in attributes:
            attributes["exception.message"] = REDACTED
        if isinstance(stack := attributes.get("exception.stacktrace"), str):
            attributes["exception.stacktrace"] = EXCEPTION_LINE.sub(rf"\1: {REDACTED}", stack)
        return Event(event.name, attributes, event.timestamp)

    def _scrubbed(span: ReadableSpan) -> ReadableSpan:
        attributes = dict(span.attributes or {})
        for key in URL_ATTRIBUTES:
            if isinstance(attributes.get(key), str):
                attributes[key] = without_query(attributes[key])
        for key in QUERY_ATTRIBUTES:
            if key in attributes:
                attributes[key] = REDACTED
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes,
            events=[_event(event) for event in span.events],
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.TESSERA_OTEL_SERVICE})
    )
    endpoint = settings.TESSERA_OTEL_ENDPOINT.rstrip("/") + "/v1/traces"
    exporter = ScrubbingExporter(OTLPSpanExporter(endpoint=endpoint))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    PsycopgInstrumentor().instrument(enable_commenter=False)
    logger.info("traces go to %s", endpoint)


def _start_sentry() -> None:
    import sentry_sdk

    off = {"mode": "off"}
    sentry_sdk.init(
        dsn=settings.TESSERA_SENTRY_DSN,
        data_collection={
            "user_info": False,
            "cookies": off,
            "http_headers": {"request": {"mode": "allowlist", "terms": sorted(KEPT_HEADERS)}},
            "http_bodies": [],
            "url_query_params": off,
            "database_query_data": False,
            "queues": False,
            "stack_frame_variables": False,
        },
        max_request_body_size="never",
        before_send=scrub_event,  # and again, whatever an integration added
        before_breadcrumb=scrub_breadcrumb,
        traces_sample_rate=0,
    )
    logger.info("errors go to Sentry")


def scrub_event(event: dict, hint: dict) -> dict:
    """An error as it may leave the building: its stack and types, no person's data."""
    event.pop("user", None)
    (event.get("extra") or {}).pop("sys.argv", None)  # a command's arguments may name someone
    request = event.get("request") or {}
    for key in ("data", "cookies", "query_string", "env"):
        request.pop(key, None)
    if "url" in request:
        request["url"] = without_query(str(request["url"]))
    if isinstance(request.get("headers"), dict):
        request["headers"] = {
            name: value
            for name, value in request["headers"].items()
            if name.lower() in KEPT_HEADERS
        }
    for exception in (event.get("exception") or {}).get("values", []):
        exception["value"] = REDACTED
        for frame in (exception.get("stacktrace") or {}).get("frames", []):
            frame.pop("vars", None)
    if "logentry" in event:
        event["logentry"] = {"message": (event["logentry"] or {}).get("message", "")}
    return event


def scrub_breadcrumb(crumb: dict, hint: dict) -> dict | None:
    """No query string in an HTTP breadcrumb, no parameters in an SQL one."""
    data = crumb.get("data") or {}
    if "url" in data:
        data["url"] = without_query(str(data["url"]))
    data.pop("http.query", None)
    if crumb.get("category") in {"query", "sql"}:
        data.pop("params", None)
        data.pop("db.params", None)
    return crumb
