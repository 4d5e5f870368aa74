"""`Idempotency-Key` on POST (jobs, uploads): the key, the request's fingerprint and the first
response are stored in the same transaction as what the request created. A retry with the same
key and the same request gets the first response again; a concurrent duplicate waits for the
first to commit, then gets its response; the same key on a different request is refused."""

import hashlib
import json
import re
from collections.abc import Callable

from django.db import IntegrityError, transaction
from rest_framework.request import Request
from rest_framework.response import Response

from tessera.api.models import IdempotentRequest
from tessera.api.problems import Problem

HEADER = "Idempotency-Key"
# 1 to 255 printable ASCII characters (what an HTTP header carries unchanged); the schema
# publishes the same rule.
KEY_PATTERN = r"^[ -~]{1,255}$"


def fingerprint(request: Request) -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}".encode())
    for name in sorted(request.data.keys()) if hasattr(request.data, "keys") else []:
        if name in request.FILES:
            file = request.FILES[name]
            digest.update(f"{name}=file:{file.name}:{file.size}:".encode())
            for chunk in file.chunks():
                digest.update(chunk)
            file.seek(0)
        else:
            values = (
                request.data.getlist(name)
                if hasattr(request.data, "getlist")
                else [request.data[name]]
            )
            digest.update(f"{name}={json.dumps(values, sort_keys=True, default=str)}".encode())
    return digest.hexdigest()


class _KeyTaken(Exception):
    pass


def idempotent(request: Request, create: Callable[[], Response]) -> Response:
    key = request.headers.get(HEADER)
    if key is None:
        return create()
    if not re.fullmatch(KEY_PATTERN, key):
        raise Problem(
            f"{HEADER} must be 1 to 255 printable ASCII characters",
            code="idempotency_key",
            status_code=400,
        )
    request_print = fingerprint(request)
    first = IdempotentRequest.objects.filter(user=request.user, key=key).first()
    if first is None:
        try:
            with transaction.atomic():
                response = create()
                if response.status_code >= 500:
                    return response
                try:
                    with transaction.atomic():
                        IdempotentRequest.objects.create(
                            user=request.user,
                            key=key,
                            path=request.path,
                            fingerprint=request_print,
                            status_code=response.status_code,
                            body=response.data,
                            location=response.get("Location", ""),
                        )
                except IntegrityError:
                    # A concurrent request with this key committed first: undo this one.
                    raise _KeyTaken from None
                return response
        except _KeyTaken:
            first = IdempotentRequest.objects.get(user=request.user, key=key)
    if first.fingerprint != request_print:
        raise Problem(
            f"this {HEADER} was already used for a different request; use a new key",
            code="idempotency_key_reused",
            status_code=422,
        )
    headers = {"Location": first.location} if first.location else {}
    return Response(first.body, status=first.status_code, headers=headers)
