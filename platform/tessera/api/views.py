"""REST endpoints under /api/v1/: thin, each one scoping its queryset to the user's
organizations and calling the services that the pages and the admin call too."""

import logging

from django.db.models import F, Prefetch
from django.http import FileResponse, HttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import filters, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from tessera.accounts.models import ApiToken, Membership, Organization
from tessera.accounts.permissions import (
    Capability,
    administered_organizations,
    may_issue_tokens,
    may_promote,
)
from tessera.accounts.selectors import organization_of
from tessera.accounts.services import (
    add_member,
    change_role,
    issue_api_token,
    remove_member,
    revoke_api_token,
)
from tessera.api import serializers
from tessera.api.access import ScopedViewMixin
from tessera.api.filtering import StrictFilterBackend
from tessera.api.idempotency import KEY_PATTERN, idempotent
from tessera.api.pagination import Cursor
from tessera.api.problems import Problem
from tessera.jobs.models import AnalysisJob, AnalysisResult
from tessera.jobs.selectors import model_versions_for
from tessera.jobs.services import (
    cancel_job,
    promote_model_version,
    record_feedback,
    request_analysis,
    retry_job,
)
from tessera.privacy.services import (
    confirming_number,
    erase_subject,
    erasure_confirmed,
    export_filename,
    export_subject,
)
from tessera.records.models import (
    Cohort,
    Encounter,
    LearningSession,
    MediaAsset,
    Patient,
    Student,
)
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
from tessera.reports.models import Report, ReportStatus
from tessera.reports.selectors import report_file
from tessera.reports.services import request_report
from tessera.webhooks.models import WebhookDelivery, WebhookSubscription
from tessera.webhooks.services import (
    change_subscription,
    create_subscription,
    rotate_secret,
    send_ping,
)

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


class OrganizationViewSet(ReportRequestMixin, ScopedViewMixin, viewsets.ReadOnlyModelViewSet):
    """Organizations you belong to, with your role in each."""

    base_queryset = Organization.objects.all()
    serializer_class = serializers.OrganizationSerializer
    ordering = ["name"]

    def get_serializer_context(self) -> dict:
        roles = dict(
            Membership.objects.filter(user=self.request.user).values_list("organization_id", "role")
        )
        return {**super().get_serializer_context(), "roles": roles}

    def report_scope(self, organization: Organization) -> dict:
        return {"organization": organization}

    @extend_schema(responses=serializers.MemberSerializer(many=True))
    @action(detail=True)
    def members(self, request, pk=None):
        """The organization's members by username, in pages like every list."""
        organization = self.get_object()
        pages = Cursor()
        pages.ordering = "username"
        memberships = organization.memberships.select_related("user").annotate(
            username=F("user__username")
        )
        page = pages.paginate_queryset(memberships, request, view=None)
        return pages.get_paginated_response(serializers.MemberSerializer(page, many=True).data)


class TokenViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Your own API tokens: see when each was last used, revoke one, and — signed in with your
    password (the settings page), not with a token — issue one (its secret is shown once). A
    token cannot mint tokens: revoking a leaked one must be the end of it."""

    serializer_class = serializers.TokenSerializer
    permission_classes = [permissions.IsAuthenticated]
    ordering = ["-created_at"]
    queryset = ApiToken.objects.none()  # for the schema: the model, hence the id's type

    def get_queryset(self):
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(responses={201: serializers.NewTokenSerializer, 400: PROBLEM, 403: PROBLEM})
    def create(self, request):
        if not may_issue_tokens(user=request.user, auth=request.auth):
            self.permission_denied(
                request,
                message="a token cannot issue tokens: sign in and use your settings page, or "
                "`manage.py issue_token`",
            )
        asked = self.get_serializer(data=request.data)
        asked.is_valid(raise_exception=True)
        token, token.key = issue_api_token(user=request.user, name=asked.validated_data["name"])
        return Response(serializers.NewTokenSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=serializers.TokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        token = self.get_object()
        revoke_api_token(token=token)
        return Response(serializers.TokenSerializer(token).data)


class MemberViewSet(
    ScopedViewMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Who belongs to your organizations. Organization admins add an existing account by
    username, change a member's role or remove them; an organization always keeps an admin."""

    base_queryset = Membership.objects.select_related("user", "organization")
    serializer_class = serializers.MemberSerializer
    write_capability = Capability.ADMINISTER
    filter_backends = LIST_BACKENDS
    filterset_fields = ["organization", "role"]
    search_fields = ["user__username"]
    ordering_fields = ["created_at"]
    ordering = ["organization__name", "user__username"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_create(self, serializer) -> None:
        organization = serializer.validated_data["organization"]
        self.check_write(organization)
        serializer.instance = add_member(
            organization=organization,
            username=serializer.validated_data["user"]["username"],
            role=serializer.validated_data["role"],
        )

    @extend_schema(request=serializers.MemberRoleSerializer, responses=serializers.MemberSerializer)
    def partial_update(self, request, pk=None):
        membership = self.get_object()
        asked = serializers.MemberRoleSerializer(data=request.data)
        asked.is_valid(raise_exception=True)
        membership = change_role(membership=membership, role=asked.validated_data["role"])
        return Response(self.get_serializer(membership).data)

    def perform_destroy(self, instance: Membership) -> None:
        remove_member(membership=instance)


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

    base_queryset = MediaAsset.objects.all()
    serializer_class = serializers.MediaSerializer
    action_capabilities = {
        "original": (
            Capability.DOWNLOAD_ORIGINALS,
            "only the organization's admins may download original files",
        )
    }
    filter_backends = LIST_BACKENDS
    filterset_fields = ["kind", "encounter", "learning_session"]
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

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


class JobViewSet(
    ScopedViewMixin,
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Analyses: request one (202 Accepted; poll its `Location`), read its status and progress,
    cancel it, retry it when it failed or was cancelled."""

    base_queryset = AnalysisJob.objects.select_related("model_version").prefetch_related(
        "media", Prefetch("results", queryset=AnalysisResult.objects.only("pk", "job_id"))
    )
    serializer_class = serializers.JobSerializer
    filter_backends = LIST_BACKENDS
    filterset_fields = ["status", "task", "encounter", "learning_session"]
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

    @extend_schema(
        request=serializers.JobRequestSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={202: serializers.JobSerializer, 400: PROBLEM, 403: PROBLEM, 409: PROBLEM},
    )
    def create(self, request):
        return idempotent(request, lambda: self._request_analysis(request))

    def _request_analysis(self, request) -> Response:
        asked = serializers.JobRequestSerializer(data=request.data, context={"request": request})
        asked.is_valid(raise_exception=True)
        data = asked.validated_data
        attached_to = data["visit"]
        self.check_write(organization_of(attached_to))
        job = request_analysis(
            attached_to=attached_to,
            task=data["task"],
            requested_by=request.user,
            media=data.get("media"),
        )
        return self._accepted(job)

    @extend_schema(request=None, responses={200: serializers.JobSerializer, 409: PROBLEM})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        if not cancel_job(job=job):
            raise Problem(f"this job has already {job.status}", code="finished", status_code=409)
        return Response(self.get_serializer(self.get_queryset().get(pk=job.pk)).data)

    @extend_schema(request=None, responses={202: serializers.JobSerializer, 409: PROBLEM})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        job = self.get_object()
        return self._accepted(retry_job(job=job, requested_by=request.user))

    def _accepted(self, job: AnalysisJob) -> Response:
        location = reverse("api:job-detail", kwargs={"pk": job.pk})
        body = self.get_serializer(self.get_queryset().get(pk=job.pk)).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class ResultViewSet(ScopedViewMixin, viewsets.ReadOnlyModelViewSet):
    """What a model made of a job's inputs; professionals confirm or correct it."""

    base_queryset = AnalysisResult.objects.select_related("model_version")
    serializer_class = serializers.ResultSerializer
    filter_backends = LIST_BACKENDS
    filterset_fields = ["job", "abstain", "emotion_label"]
    ordering_fields = ["created_at", "uncertainty"]
    ordering = ["-created_at"]

    @extend_schema(
        request=serializers.FeedbackSerializer,
        responses={201: serializers.FeedbackSerializer, 400: PROBLEM, 403: PROBLEM},
    )
    @action(detail=True, methods=["post"])
    def feedback(self, request, pk=None):
        result = self.get_object()  # for a POST, the object permission asks for WRITE
        given = serializers.FeedbackSerializer(data=request.data, context={"request": request})
        given.is_valid(raise_exception=True)
        feedback = record_feedback(result=result, given_by=request.user, **given.validated_data)
        return Response(
            serializers.FeedbackSerializer(feedback).data, status=status.HTTP_201_CREATED
        )


class ModelVersionViewSet(ScopedViewMixin, viewsets.ReadOnlyModelViewSet):
    """The models that serve your kinds of organization: every version, its held-out metrics
    and who promoted it. Organization admins promote a version; the previous one retires."""

    serializer_class = serializers.ModelVersionSerializer
    write_capability = Capability.PROMOTE_MODELS
    filter_backends = LIST_BACKENDS
    filterset_fields = ["serves", "status"]
    ordering_fields = ["created_at", "promoted_at"]
    ordering = ["-created_at"]

    def get_queryset(self):
        return model_versions_for(user=self.request.user).select_related("promoted_by")

    def check_object_permissions(self, request, obj) -> None:
        """A version belongs to no organization: promoting it needs an admin of an
        organization it serves."""
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return
        if not may_promote(user=request.user, serves=obj.serves):
            self.permission_denied(request, message="only organization admins promote models")

    @extend_schema(request=None, responses={200: serializers.ModelVersionSerializer, 403: PROBLEM})
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        version = self.get_object()
        promote_model_version(version=version, promoted_by=request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=version.pk)).data)


class ReportViewSet(ScopedViewMixin, viewsets.ReadOnlyModelViewSet):
    """PDF reports, newest first: their status, and the file once ready. Ask for one at
    `POST /patients/{id}/reports/`, `/students/{id}/reports/`, `/cohorts/{id}/reports/` or
    `/organizations/{id}/reports/`; the `report.ready` webhook tells when it is done."""

    base_queryset = Report.objects.prefetch_related("model_versions")
    serializer_class = serializers.ReportSerializer
    filter_backends = LIST_BACKENDS
    filterset_fields = ["kind", "status", "patient", "student", "cohort"]
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
        return FileResponse(
            report_file(report).open("rb"),
            as_attachment=True,
            filename=report.filename,
            content_type="application/pdf",
        )


class WebhookSubscriptionViewSet(
    ScopedViewMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Organization admins subscribe a URL to events. Deliveries are POSTed as JSON and signed:
    `Tessera-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>` with the secret
    shown once when the subscription is created (or its secret rotated)."""

    base_queryset = WebhookSubscription.objects.select_related("organization")
    serializer_class = serializers.WebhookSubscriptionSerializer
    write_capability = Capability.ADMINISTER
    filter_backends = LIST_BACKENDS
    filterset_fields = ["organization", "is_active"]
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return self.base_queryset.filter(
            organization__in=administered_organizations(user=self.request.user)
        )

    @extend_schema(
        request=serializers.WebhookSubscriptionSerializer,
        responses={201: serializers.WebhookSubscriptionWithSecretSerializer, 400: PROBLEM},
    )
    def create(self, request):
        asked = self.get_serializer(data=request.data)
        asked.is_valid(raise_exception=True)
        data = asked.validated_data
        self.check_write(data["organization"])
        subscription = create_subscription(
            organization=data["organization"],
            url=data["url"],
            events=data["events"],
            description=data.get("description", ""),
            created_by=request.user,
        )
        body = serializers.WebhookSubscriptionWithSecretSerializer(
            subscription, context=self.get_serializer_context()
        ).data
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer) -> None:
        change_subscription(subscription=serializer.instance, changes=serializer.validated_data)

    @extend_schema(request=None, responses=serializers.WebhookSubscriptionWithSecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        subscription = rotate_secret(subscription=self.get_object())
        return Response(serializers.WebhookSubscriptionWithSecretSerializer(subscription).data)

    @extend_schema(request=None, responses={202: serializers.WebhookDeliverySerializer})
    @action(detail=True, methods=["post"])
    def ping(self, request, pk=None):
        """Send a signed `ping` delivery now, to check a receiver."""
        delivery = send_ping(subscription=self.get_object())
        return Response(
            serializers.WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED
        )


class WebhookDeliveryViewSet(ScopedViewMixin, viewsets.ReadOnlyModelViewSet):
    """The delivery log: every event sent to your subscriptions, its attempts and the last
    answer of the receiver (status code only; its body is not kept)."""

    serializer_class = serializers.WebhookDeliverySerializer
    filter_backends = LIST_BACKENDS
    filterset_fields = ["subscription", "event", "status"]
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

    def get_queryset(self):
        return WebhookDelivery.objects.filter(
            subscription__organization__in=administered_organizations(user=self.request.user)
        )
