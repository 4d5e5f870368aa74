from django.contrib import admin

from tessera.accounts.admin import HistoryAdmin, OrganizationScopedAdmin
from tessera.jobs.models import (
    AnalysisJob,
    AnalysisResult,
    Feedback,
    ModelVersion,
    ResultDelivery,
    TrainingRun,
)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Platform operators register bundles; promotion goes through the model page (it retires
    the previous version in the same transaction)."""

    list_display = ["name", "serves", "status", "created_at", "promoted_at", "promoted_by"]
    list_filter = ["serves", "status"]
    readonly_fields = ["status", "promoted_at", "promoted_by", "created_at"]


@admin.register(TrainingRun)
class TrainingRunAdmin(HistoryAdmin):
    """What each training run learned from, what it decided and who asked: a history, never
    edited (runs are requested with `manage.py train_from_feedback`)."""

    list_display = ["pk", "serves", "status", "cases", "base_version", "candidate", "created_at"]
    list_filter = ["serves", "status"]


class ResultInline(admin.StackedInline):
    model = AnalysisResult
    extra = 0
    can_delete = False
    readonly_fields = [
        "model_version",
        "findings",
        "diagnosis",
        "emotion_label",
        "emotion",
        "modalities_used",
        "contributions",
        "uncertainty",
        "abstain",
        "tutoring",
        "rationale",
        "created_at",
    ]
    fields = readonly_fields

    def has_view_permission(self, request, obj=None) -> bool:
        return True  # the job's admin has already checked the organization

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AnalysisJob)
class AnalysisJobAdmin(OrganizationScopedAdmin):
    """Read-only: jobs change state only through the pipeline's services."""

    list_display = [
        "__str__",
        "organization",
        "task",
        "status",
        "attempts",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "task", ("organization", admin.RelatedOnlyFieldListFilter)]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]
    inlines = [ResultInline]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields] + ["media"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Feedback)
class FeedbackAdmin(OrganizationScopedAdmin):
    list_display = ["__str__", "kind", "given_by", "created_at"]
    list_filter = ["kind"]
    readonly_fields = [
        "result",
        "kind",
        "diagnosis",
        "emotion_label",
        "intervention",
        "comment",
        "given_by",
        "created_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ResultDelivery)
class ResultDeliveryAdmin(HistoryAdmin, OrganizationScopedAdmin):
    """The log of results sent to the organization's PACS and FHIR server: read only."""

    list_display = [
        "result",
        "destination",
        "report_status",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "sent_at",
    ]
    list_filter = ["destination", "status"]
    readonly_fields = [
        "result",
        "destination",
        "report_status",
        "report",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "sent_objects",
        "sent_at",
    ]
