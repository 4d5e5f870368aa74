"""PDF reports, rendered asynchronously on the `reports` queue: one patient's or student's
analyses (for the chart, or a parents' evening), or a cohort's (a ward, a class, or the whole
organization) over a period; and the weekly schedules that request cohort reports."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from tessera.accounts.models import Organization
from tessera.jobs.models import ModelVersion
from tessera.records.kinds import Subject, subject_id_of, subject_of
from tessera.records.models import Cohort, SubjectKey


class ReportKind(models.TextChoices):
    PATIENT = "patient", "Patient report"
    STUDENT = "student", "Student report"
    COHORT = "cohort", "Cohort report"


class ReportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RENDERING = "rendering", "Rendering"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Report(models.Model):
    ORGANIZATION_LOOKUP = "organization"
    AUDIT_TYPE = "report"
    SUBJECT_LOOKUPS = {
        "patient": "subject_key__patient",
        "student": "subject_key__student",
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="reports")
    kind = models.CharField(max_length=16, choices=ReportKind.choices)
    subject_key = models.ForeignKey(
        SubjectKey,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="reports",
        help_text="For a patient's or a student's report: whose it is.",
    )
    cohort = models.ForeignKey(
        Cohort,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="reports",
        help_text="For a cohort report: the ward or class; none for the whole organization.",
    )
    period_start = models.DateField(null=True, blank=True, help_text="None: from the first.")
    period_end = models.DateField()
    status = models.CharField(
        max_length=16, choices=ReportStatus.choices, default=ReportStatus.QUEUED
    )
    error_message = models.TextField(blank=True)
    file_path = models.CharField(max_length=300, blank=True, help_text="Under MEDIA_ROOT.")
    size_bytes = models.PositiveIntegerField(null=True, blank=True)
    pages = models.PositiveSmallIntegerField(null=True, blank=True)
    model_versions = models.ManyToManyField(
        ModelVersion, blank=True, related_name="+", help_text="The versions whose results it shows."
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    schedule = models.ForeignKey(
        "ReportSchedule",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reports",
        help_text="The weekly schedule that requested it, if any.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="report_org_created"),
            models.Index(fields=["status", "created_at"], name="report_status_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind__in=["patient", "student"], subject_key__isnull=False)
                    | Q(kind="cohort", subject_key__isnull=True)
                ),
                name="report_subject_fits_its_kind",
            ),
            models.CheckConstraint(
                condition=Q(period_start__isnull=True) | Q(period_start__lte=F("period_end")),
                name="report_period_in_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {str(self.pk)[:8]} ({self.get_status_display()})"

    @property
    def subject(self) -> Subject | None:
        """The person a patient's or student's report is about; None for a cohort's."""
        return None if self.kind == ReportKind.COHORT else subject_of(self)

    @property
    def is_finished(self) -> bool:
        return self.status in (ReportStatus.READY, ReportStatus.FAILED)

    @property
    def filename(self) -> str:
        """What a download is called: what it is and when, never a person's name."""
        if self.kind != ReportKind.COHORT:
            scope = f"{self.kind}-{subject_id_of(self)}"
        else:
            scope = f"cohort-{self.cohort_id}" if self.cohort_id else "organization"
        return f"tessera-{scope}-{self.period_end:%Y-%m-%d}.pdf"


class ReportSchedule(models.Model):
    """A cohort report every week (celery beat, database scheduler): each Monday it covers the
    seven days before."""

    ORGANIZATION_LOOKUP = "organization"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="report_schedules"
    )
    cohort = models.ForeignKey(
        Cohort,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="report_schedules",
        help_text="None: the whole organization.",
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", on_delete=models.CASCADE, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "cohort"],
                condition=Q(cohort__isnull=False),
                name="one_weekly_report_per_cohort",
            ),
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(cohort__isnull=True),
                name="one_weekly_report_per_organization",
            ),
        ]

    def __str__(self) -> str:
        scope = self.cohort.name if self.cohort else self.organization.name
        return f"Weekly report of {scope}"
