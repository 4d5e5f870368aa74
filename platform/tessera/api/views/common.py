"""What the API's viewsets share: the list filters, the documented problem and
idempotency key, and the actions that ask for a report or answer a data-subject request."""

import logging

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import filters, status
from rest_framework.decorators import action
from rest_framework.response import Response

from tessera.accounts.permissions import (
    Capability,
)
from tessera.api import serializers
from tessera.api.filtering import StrictFilterBackend
from tessera.api.idempotency import KEY_PATTERN, idempotent
from tessera.api.problems import Problem
from tessera.privacy.services import (
    confirming_number,
    erase_subject,
    erasure_confirmed,
    export_filename,
    export_subject,
)
from tessera.reports.services import request_report

LIST_BACKENDS = [StrictFilterBackend, filters.OrderingFilter, filters.SearchFilter]
PROBLEM = OpenApiResponse(description="application/problem+json (RFC 9457)")
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    type={"type": "string", "pattern": KEY_PATTERN, "minLength": 1, "maxLength": 255},
    location=OpenApiParameter.HEADER,
    required=False,
    description="Retrying with the same key returns the first response, creating nothing new.",
)

logger = logging.getLogger(__name__)


class ReportRequestMixin:
    """`POST …/{id}/reports/`: a PDF report of this record (a patient, a student) or cohort (a
    ward, a class, a whole organization), rendered asynchronously: 202 Accepted, then poll the
    report's `Location` until its `download` link appears. Someone who cannot see the record
    gets 404; a role that may not write, 403."""

    def report_scope(self, obj) -> dict:
        raise NotImplementedError

    @extend_schema(
        request=serializers.ReportRequestSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={202: serializers.ReportSerializer, 400: PROBLEM, 403: PROBLEM, 404: PROBLEM},
    )
    @action(detail=True, methods=["post"])
    def reports(self, request, pk=None):
        scope = self.report_scope(self.get_object())
        return idempotent(request, lambda: self._request_report(request, scope))

    def _request_report(self, request, scope: dict) -> Response:
        asked = serializers.ReportRequestSerializer(data=request.data)
        asked.is_valid(raise_exception=True)
        report = request_report(requested_by=request.user, **scope, **asked.validated_data)
        body = serializers.ReportSerializer(report, context={"request": request}).data
        location = reverse("api:report-detail", kwargs={"pk": report.pk})
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


REQUESTS_REFUSAL = "only the organization's admins handle data-subject requests"


class SubjectRequestMixin:
    """Data-subject requests, for the organization's admins: `GET …/{id}/export/` (a zip of
    everything held about the person) and `POST …/{id}/erase/` with `confirm` set to their MRN
    or student number (everything deleted; the access log keeps the trail)."""

    action_capabilities = {
        "export": (Capability.EXPORT_SUBJECT, REQUESTS_REFUSAL),
        "erase": (Capability.ERASE_SUBJECT, REQUESTS_REFUSAL),
    }

    @extend_schema(responses={(200, "application/zip"): bytes, 403: PROBLEM, 404: PROBLEM})
    @action(detail=True)
    def export(self, request, pk=None):
        subject = self.get_object()
        response = HttpResponse(export_subject(subject=subject), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{export_filename(subject)}"'
        return response

    @extend_schema(
        request=serializers.EraseSerializer,
        responses={200: serializers.ErasedSerializer, 400: PROBLEM, 403: PROBLEM, 404: PROBLEM},
    )
    @action(detail=True, methods=["post"])
    def erase(self, request, pk=None):
        subject = self.get_object()
        asked = serializers.EraseSerializer(data=request.data)
        asked.is_valid(raise_exception=True)
        if not erasure_confirmed(subject, asked.validated_data["confirm"]):
            raise Problem(
                f"nothing was erased: to erase this person, set confirm to their "
                f"{confirming_number(subject)}",
                code="not_confirmed",
            )
        erased = erase_subject(subject=subject, erased_by=request.user)
        return Response({"erased": erased})
