"""Optional telemetry (tessera.telemetry), each in a process of its own, against a local
receiver standing in for the collector: OpenTelemetry traces reach an OTLP/HTTP collector with
the request's span and (on PostgreSQL) the query's, and Sentry gets an error with its type and
stack; neither carries a person's name typed into a query string, a query's parameters, the
user or an exception's message. Off unless configured."""

import gzip
import json
import os
import subprocess
import sys
import zlib

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import PHI_CANARY
from tests.integration.processes import (
    REPO,
    QuietHandler,
    http_server,
    pipeline_environment,
    throwaway_database,
)

TRACED = f"""
from django.db import connection
from django.test import Client
from opentelemetry import trace
from tessera.telemetry import start_telemetry
start_telemetry()
assert Client().get("/healthz", {{"search": "{PHI_CANARY}"}}).status_code == 200
if connection.vendor == "postgresql":
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s", ["{PHI_CANARY}"])
with trace.get_tracer("test").start_as_current_span("a task that failed") as span:
    try:
        raise ValueError("no record for {PHI_CANARY}")
    except ValueError as error:
        span.record_exception(error)
getattr(trace.get_tracer_provider(), "force_flush", lambda: None)()  # none when off
"""

REPORTED = f"""
import sentry_sdk
from tessera.telemetry import start_telemetry
start_telemetry()
sentry_sdk.set_user({{"username": "{PHI_CANARY}"}})
try:
    raise ValueError("no record for {PHI_CANARY}")
except ValueError:
    sentry_sdk.capture_exception()
sentry_sdk.flush()
"""


@pytest.fixture
def receiver():
    """A local HTTP server keeping every body posted to it (decompressed), by path."""
    received: list[tuple[str, bytes]] = []

    class Keep(QuietHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding == "br":
                import brotli

                body = brotli.decompress(body)
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

    with http_server(Keep) as url:
        yield url.removeprefix("http://"), received


def run(script: str, tmp_path, **env: str) -> None:
    """`script` in a platform process of its own, on a database of its own."""
    with throwaway_database(tmp_path) as database_url:
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-v", "0", "-c", script],
            cwd=REPO,
            env=pipeline_environment(tmp_path, database_url, tmp_path / "models", **env),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr


def test_traces_reach_the_collector_without_a_query_string_or_a_querys_values(receiver, tmp_path):
    address, received = receiver
    run(
        TRACED,
        tmp_path,
        TESSERA_OTEL_ENDPOINT=f"http://{address}",
        TESSERA_OTEL_SERVICE="tessera-test",
    )
    spans, values = [], []
    for path, body in received:
        assert path == "/v1/traces"
        export = ExportTraceServiceRequest.FromString(body)
        for resource in export.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            assert service["service.name"] == "tessera-test"
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: a.value.string_value for a in span.attributes}
                    spans.append((span.name, attributes))
                    values += attributes.values()
                    for event in span.events:
                        said = {a.key: a.value.string_value for a in event.attributes}
                        values += said.values()
                        if event.name == "exception":
                            assert said["exception.type"] == "ValueError"
                            stack = said["exception.stacktrace"]
                            assert stack.startswith("Traceback"), "the stack is kept"
                            assert "ValueError: (redacted)" in stack, "its message is not"
    assert any("/healthz" in " ".join(attrs.values()) for _, attrs in spans), spans
    assert "a task that failed" in [name for name, _ in spans]
    assert not [value for value in values if PHI_CANARY.split()[0] in value], values
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        statements = [attrs.get("db.statement", "") for _, attrs in spans]
        assert "SELECT %s" in statements, "the query, with its placeholder only"


def test_errors_reach_sentry_with_their_type_and_no_persons_data(receiver, tmp_path):
    address, received = receiver
    run(REPORTED, tmp_path, TESSERA_SENTRY_DSN=f"http://public@{address}/1")
    assert received, "the error was sent"
    envelope = b"\n".join(body for _, body in received).decode()
    events = [json.loads(line) for line in envelope.splitlines() if '"exception"' in line]
    assert events[0]["exception"]["values"][0]["type"] == "ValueError"
    assert events[0]["exception"]["values"][0]["stacktrace"]["frames"], "with its stack"
    assert PHI_CANARY.split()[0] not in envelope
    assert "user" not in events[0]


def test_telemetry_is_off_unless_configured(receiver, tmp_path):
    _, received = receiver
    run(TRACED, tmp_path / "traced")
    run(REPORTED, tmp_path / "reported")
    assert received == []
