"""Cohorts, patients and students, their encounters and learning sessions, and the files
uploaded for them."""

import logging

from django.http import FileResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from tessera.accounts.models import Organization
from tessera.accounts.permissions import (
    Capability,
)
from tessera.accounts.selectors import organization_of
from tessera.api import serializers
from tessera.api.access import ScopedViewMixin
from tessera.api.filtering import MEDIA_FILTERS
from tessera.api.idempotency import idempotent
from tessera.api.problems import Problem
from tessera.api.views.common import (
    IDEMPOTENCY_KEY,
    LIST_BACKENDS,
    PROBLEM,
    ReportRequestMixin,
    SubjectRequestMixin,
)
from tessera.audit import services as audit
from tessera.records.models import (
    Cohort,
    Encounter,
    LearningSession,
    MediaAsset,
    Patient,
    Student,
)
from tessera.records.selectors import pacs_origin, transcripts_of
from tessera.records.services import (
    add_dicom_series,
    add_media,
    change_record,
    create_cohort,
    create_encounter,
    create_learning_session,
    create_patient,
    create_student,
)
from tessera.records.storage import StoredContentCorrupted, content_store
from tessera.records.uploads import STORED_CONTENT_TYPES

logger = logging.getLogger(__name__)


class _RecordViewSet(
    ScopedViewMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    filter_backends = LIST_BACKENDS
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        queryset = super().get_queryset()
        # A list names each row's organization and cohort by the ids the row holds: joining
        # them (as one record's page and report want) would build two objects more per row.
        return queryset.select_related(None) if self.action == "list" else queryset

    def perform_create(self, serializer) -> None:
        self.check_write(self._organization_of_new(serializer.validated_data))
        serializer.instance = self.create_record(serializer.validated_data)

    def _organization_of_new(self, data: dict) -> Organization:
        return data["organization"]

    def create_record(self, data: dict):
        raise NotImplementedError

    def perform_update(self, serializer) -> None:
        change_record(record=serializer.instance, changes=serializer.validated_data)


class CohortViewSet(ReportRequestMixin, _RecordViewSet):
    """Wards of a clinic, classes of a school."""

    base_queryset = Cohort.objects.select_related("organization")
    serializer_class = serializers.CohortSerializer
    filterset_fields = ["organization"]
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]

    def report_scope(self, cohort: Cohort) -> dict:
        return {"organization": cohort.organization, "cohort": cohort}

    def create_record(self, data: dict):
        return create_cohort(**data)


class PatientViewSet(SubjectRequestMixin, ReportRequestMixin, _RecordViewSet):
    base_queryset = Patient.objects.select_related("organization", "cohort")
    serializer_class = serializers.PatientSerializer
    filterset_fields = ["organization", "cohort", "sex"]
    search_fields = ["full_name", "mrn"]
    ordering_fields = ["full_name", "created_at"]
    ordering = ["full_name"]

    def report_scope(self, patient: Patient) -> dict:
        return {"organization": patient.organization, "subject": patient}

    def create_record(self, data: dict):
        return create_patient(**data)


class StudentViewSet(SubjectRequestMixin, ReportRequestMixin, _RecordViewSet):
    base_queryset = Student.objects.select_related("organization", "cohort")
    serializer_class = serializers.StudentSerializer
    filterset_fields = ["organization", "cohort", "grade"]
    search_fields = ["full_name", "student_number"]
    ordering_fields = ["full_name", "created_at"]
    ordering = ["full_name"]

    def report_scope(self, student: Student) -> dict:
        return {"organization": student.organization, "subject": student}

    def create_record(self, data: dict):
        return create_student(**data)


class EncounterViewSet(_RecordViewSet):
    base_queryset = Encounter.objects.select_related("patient")
    serializer_class = serializers.EncounterSerializer
    filterset_fields = ["patient"]
    ordering_fields = ["occurred_at", "created_at"]
    ordering = ["-occurred_at"]

    def _organization_of_new(self, data: dict) -> Organization:
        return organization_of(data["patient"])

    def create_record(self, data: dict):
        return create_encounter(**data, clinician=self.request.user)


class LearningSessionViewSet(_RecordViewSet):
    base_queryset = LearningSession.objects.select_related("student")
    serializer_class = serializers.LearningSessionSerializer
    filterset_fields = ["student", "subject_area"]
    ordering_fields = ["occurred_at", "created_at"]
    ordering = ["-occurred_at"]

    def _organization_of_new(self, data: dict) -> Organization:
        return organization_of(data["student"])

    def create_record(self, data: dict):
        return create_learning_session(**data, teacher=self.request.user)


class MediaViewSet(
    ScopedViewMixin,
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Uploaded files. Upload with multipart/form-data: `kind`, `file`, and the `encounter` or
    `learning_session` it belongs to; every file is validated before anything is stored."""

    base_queryset = MediaAsset.objects.select_related("visit_key", "transcript")
    serializer_class = serializers.MediaSerializer
    action_capabilities = {
        "original": (
            Capability.READ_ORIGINALS,
            "only the organization's admins may download original files",
        ),
        "origin": (
            Capability.READ_ORIGINALS,
            "only the organization's admins may read where an image came from in the PACS",
        ),
    }
    filter_backends = LIST_BACKENDS
    filterset_class = MEDIA_FILTERS
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

    def get_object(self):
        asset = super().get_object()
        if self.action == "retrieve":
            audit.record_each(transcripts_of([asset]), action=audit.Action.VIEW)
        return asset

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        audit.record_each(transcripts_of(page or []), action=audit.Action.LIST)
        return page

    @extend_schema(
        request={"multipart/form-data": serializers.MediaUploadSerializer},
        parameters=[IDEMPOTENCY_KEY],
        responses={201: serializers.MediaSerializer, 400: PROBLEM, 413: PROBLEM, 415: PROBLEM},
    )
    def create(self, request):
        return idempotent(request, lambda: self._upload(request))

    def _upload(self, request) -> Response:
        upload = serializers.MediaUploadSerializer(data=request.data, context={"request": request})
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        attached_to = data["visit"]
        self.check_write(organization_of(attached_to))
        file = data["file"]
        asset = add_media(
            attached_to=attached_to,
            kind=data["kind"],
            file=file,
            filename=file.name or "",
            declared_content_type=file.content_type or "",
            uploaded_by=request.user,
        )
        body = serializers.MediaSerializer(asset, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={"multipart/form-data": serializers.SeriesUploadSerializer},
        parameters=[IDEMPOTENCY_KEY],
        responses={201: serializers.SeriesSerializer, 400: PROBLEM, 413: PROBLEM},
    )
    @action(detail=False, methods=["post"])
    def series(self, request):
        """A zipped DICOM series: every image stored (validated, de-identified), or none."""
        return idempotent(request, lambda: self._upload_series(request))

    def _upload_series(self, request) -> Response:
        upload = serializers.SeriesUploadSerializer(data=request.data, context={"request": request})
        upload.is_valid(raise_exception=True)
        encounter = upload.validated_data["encounter"]
        self.check_write(organization_of(encounter))
        media = add_dicom_series(
            encounter=encounter, archive=upload.validated_data["file"], uploaded_by=request.user
        )
        body = {
            "count": len(media),
            "media": serializers.MediaSerializer(
                media, many=True, context={"request": request}
            ).data,
        }
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={
            **{(200, content_type): bytes for content_type in STORED_CONTENT_TYPES},
            403: PROBLEM,
            404: PROBLEM,
        }
    )
    @action(detail=True)
    def download(self, request, pk=None):
        asset = self.get_object()
        return self._file(asset, lambda: content_store().open_media(asset))

    @extend_schema(responses={(200, "application/dicom"): bytes, 403: PROBLEM, 404: PROBLEM})
    @action(detail=True)
    def original(self, request, pk=None):
        """The DICOM file as uploaded, before de-identification: kept (encrypted) only where
        the organization opts in, and given only to its admins."""
        asset = self.get_object()
        if not asset.original_sha256:
            raise Problem(
                "no original is kept for this file: the organization did not keep originals "
                "when it was uploaded",
                code="no_original",
                status_code=404,
            )
        return self._file(asset, lambda: content_store().open_original(asset))

    @extend_schema(responses={200: serializers.PacsOriginSerializer, 403: PROBLEM, 404: PROBLEM})
    @action(detail=True)
    def origin(self, request, pk=None):
        """Where this de-identified DICOM image came from in the PACS: its original study,
        series and instance UIDs and the study's accession number, which de-identification
        replaced. Only the organization's admins may read it; every read is audited."""
        asset = self.get_object()
        try:
            identity = pacs_origin(media=asset)
        except StoredContentCorrupted as error:
            logger.error("the PACS origin of media %s cannot be decrypted", asset.pk)
            raise Problem(
                "where this image came from cannot be read with this server's keys; tell the "
                "organization's administrator",
                code="damaged",
                status_code=500,
            ) from error
        if identity is None:
            raise Problem(
                "only a DICOM image has a place in the PACS to point back to",
                code="no_origin",
                status_code=404,
            )
        return Response(serializers.PacsOriginSerializer(identity).data)

    def _file(self, asset: MediaAsset, open_content) -> FileResponse:
        try:
            content = open_content()
        except StoredContentCorrupted as error:
            logger.error("stored media %s failed its integrity check", asset.pk)
            raise Problem(
                "this file is damaged: its content no longer matches the checksum taken at "
                "upload, so it was not sent; tell the organization's administrator",
                code="damaged",
                status_code=500,
            ) from error
        return FileResponse(
            content,
            as_attachment=True,
            filename=asset.original_filename or f"{asset.kind}-{asset.pk}",
            content_type=asset.content_type,
        )
