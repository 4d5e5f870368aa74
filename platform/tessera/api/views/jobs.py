"""Analyses: jobs, their results (with professionals' verdicts) and the model versions that
make them."""

from django.db.models import Prefetch
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from tessera.accounts.permissions import (
    Capability,
    may_promote,
)
from tessera.accounts.selectors import organization_of
from tessera.api import serializers
from tessera.api.access import ScopedViewMixin
from tessera.api.filtering import JOB_FILTERS
from tessera.api.idempotency import idempotent
from tessera.api.problems import Problem
from tessera.api.views.common import (
    IDEMPOTENCY_KEY,
    LIST_BACKENDS,
    PROBLEM,
)
from tessera.jobs.models import AnalysisJob, AnalysisResult
from tessera.jobs.selectors import model_versions_for
from tessera.jobs.services import (
    cancel_job,
    promote_model_version,
    record_feedback,
    request_analysis,
    retry_job,
)


class JobViewSet(
    ScopedViewMixin,
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Analyses: request one (202 Accepted; poll its `Location`), read its status and progress,
    cancel it, retry it when it failed or was cancelled."""

    base_queryset = AnalysisJob.objects.select_related(
        "model_version", "visit_key"
    ).prefetch_related(
        "media", Prefetch("results", queryset=AnalysisResult.objects.only("pk", "job_id"))
    )
    serializer_class = serializers.JobSerializer
    filter_backends = LIST_BACKENDS
    filterset_class = JOB_FILTERS
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

    base_queryset = AnalysisResult.objects.select_related("model_version", "tutoring_library")
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
