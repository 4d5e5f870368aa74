"""PDF reports: their status, and the file once ready."""

from django.http import FileResponse
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action

from tessera.api import serializers
from tessera.api.access import ScopedViewMixin
from tessera.api.filtering import REPORT_FILTERS
from tessera.api.problems import Problem
from tessera.api.views.common import (
    LIST_BACKENDS,
    PROBLEM,
)
from tessera.records.storage import StoredContentCorrupted
from tessera.reports.models import Report, ReportStatus
from tessera.reports.selectors import open_report


class ReportViewSet(ScopedViewMixin, viewsets.ReadOnlyModelViewSet):
    """PDF reports, newest first: their status, and the file once ready. Ask for one at
    `POST /patients/{id}/reports/`, `/students/{id}/reports/`, `/cohorts/{id}/reports/` or
    `/organizations/{id}/reports/`; the `report.ready` webhook tells when it is done."""

    base_queryset = Report.objects.select_related("subject_key").prefetch_related("model_versions")
    serializer_class = serializers.ReportSerializer
    filter_backends = LIST_BACKENDS
    filterset_class = REPORT_FILTERS
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

    @extend_schema(responses={(200, "application/pdf"): bytes, 409: PROBLEM})
    @action(detail=True)
    def download(self, request, pk=None):
        report = self.get_object()
        if report.status != ReportStatus.READY:
            raise Problem(
                f"this report is {report.get_status_display().lower()}, not ready"
                + (f": {report.error_message}" if report.error_message else ""),
                code="not_ready",
                status_code=409,
            )
        try:
            pdf = open_report(report)
        except StoredContentCorrupted as error:
            raise Problem(
                "this report's file is missing or damaged, so it was not sent; ask for the "
                "report again, and tell the organization's administrator",
                code="damaged",
                status_code=500,
            ) from error
        return FileResponse(
            pdf,
            as_attachment=True,
            filename=report.filename,
            content_type="application/pdf",
        )
