"""What every log line says about where it came from: the request (its id, taken from the
`X-Request-ID` header a proxy set, or made here) and, in a worker, the task and the job.

`RequestIdMiddleware` sets the request's id and answers with it; tasks published while a request
is handled carry it in a message header, so a job's lines in the worker share the id of the
request that asked for it. `ContextFilter` (on the console handler, settings.LOGGING) adds the
ids to every record; `TESSERA_LOG_FORMAT=json` writes each record as one JSON object per line.
Only ids travel: the access log, not the application log, says whose records were touched.
"""

import logging
import re
import uuid
from contextvars import ContextVar

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.core.signals import request_finished
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
# What a proxy's id may look like: no spaces, quotes or control characters in a log line.
_ACCEPTED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

request_id: ContextVar[str] = ContextVar("request_id", default="")
task_context: ContextVar[dict[str, str] | None] = ContextVar("task_context", default=None)


class RequestIdMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        current = offered if _ACCEPTED_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        # Kept until the response is closed (request_finished): Django logs an error response
        # after the middleware has returned.
        request_id.set(current)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = current
        return response


class ContextFilter(logging.Filter):
    """Adds `request_id`, `task`, `task_id` and `job_id` (empty where there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        context = task_context.get() or {}
        record.task = context.get("task", "")
        record.task_id = context.get("task_id", "")
        record.job_id = context.get("job_id", "")
        return True


class JsonLinesFormatter(JsonFormatter):
    """One JSON object per record: time, level, logger, message, the context's ids, and the
    traceback where there is one."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s "
            "%(request_id)s %(task)s %(task_id)s %(job_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )


def _request_finished(**_: object) -> None:
    request_id.set("")


request_finished.connect(_request_finished, dispatch_uid="logs.request_finished")


@before_task_publish.connect(dispatch_uid="logs.request_id_to_task")
def _carry_request_id(headers: dict | None = None, **_: object) -> None:
    if headers is not None and request_id.get():
        headers["request_id"] = request_id.get()


@task_prerun.connect(dispatch_uid="logs.task_started")
def _task_started(task_id: str, task, args=(), **_: object) -> None:
    from tessera.celery import TaskName  # tessera.celery imports this module

    context = {"task": task.name, "task_id": task_id}
    if task.name in (TaskName.PREPROCESS, TaskName.INFER) and args:  # (job_id,)
        context["job_id"] = str(args[0])
    task_context.set(context)
    request_id.set(getattr(task.request, "request_id", None) or "")


@task_postrun.connect(dispatch_uid="logs.task_finished")
def _task_finished(**_: object) -> None:
    task_context.set(None)
    request_id.set("")
