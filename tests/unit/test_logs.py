"""Log lines name their request and job (issue 25, point 3): JSON lines with the request's id
(the proxy's X-Request-ID, or one made here), the task's and the job's ids in a worker, and the
request's id carried into the tasks it publishes."""

import io
import json
import logging

import pytest
from celery.signals import before_task_publish, task_postrun, task_prerun

from tessera.celery import app as celery_app
from tessera.logs import ContextFilter, JsonLinesFormatter, request_id


@pytest.fixture
def json_lines():
    """What the console handler writes in production, captured."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    handler.addFilter(ContextFilter())
    logging.getLogger().addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logging.getLogger().removeHandler(handler)


def test_a_request_gets_an_id_that_its_log_lines_and_its_answer_carry(client, db, json_lines):
    response = client.get("/no-such-page/")
    made = response["X-Request-ID"]
    assert len(made) == 32
    [line] = [line for line in json_lines() if line["logger"] == "django.request"]
    assert line["request_id"] == made
    assert line["level"] == "WARNING"
    assert {"time", "message", "task", "task_id", "job_id"} <= set(line)
    assert client.get("/no-such-page/")["X-Request-ID"] != made, "one id per request"


def test_a_proxys_request_id_is_kept_and_a_malformed_one_replaced(client, db):
    kept = client.get("/no-such-page/", HTTP_X_REQUEST_ID="lb-7f3a.42")
    assert kept["X-Request-ID"] == "lb-7f3a.42"
    for malformed in ("two words", "x" * 65, 'quote"d', "line\\nbreak"):
        answer = client.get("/no-such-page/", HTTP_X_REQUEST_ID=malformed)
        assert answer["X-Request-ID"] != malformed
        assert len(answer["X-Request-ID"]) == 32


def test_a_task_publishes_with_the_requests_id_and_its_lines_name_task_and_job(json_lines):
    headers: dict = {}
    token = request_id.set("req-1")
    try:
        before_task_publish.send(sender="tessera.jobs.preprocess", headers=headers)
    finally:
        request_id.reset(token)
    assert headers["request_id"] == "req-1"

    task = celery_app.tasks["tessera.ping"]
    task.push_request(request_id="req-1")
    preprocess = type("Task", (), {"name": "tessera.jobs.preprocess", "request": task.request})
    try:
        task_prerun.send(sender=preprocess, task_id="t-9", task=preprocess, args=("job-5",))
        logging.getLogger("tessera.jobs").warning("preparing")
        task_postrun.send(sender=preprocess, task_id="t-9", task=preprocess)
        logging.getLogger("tessera.jobs").warning("between tasks")
    finally:
        task.pop_request()
    during, after = [line for line in json_lines() if line["logger"] == "tessera.jobs"]
    assert (during["request_id"], during["task"], during["task_id"], during["job_id"]) == (
        "req-1",
        "tessera.jobs.preprocess",
        "t-9",
        "job-5",
    )
    assert (after["request_id"], after["task_id"], after["job_id"]) == ("", "", "")
