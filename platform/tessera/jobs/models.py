"""Analysis jobs and what they produce.

The database, not the broker, is the source of truth: a job row is written (status `queued`)
in the same transaction as the request, and its message is published after commit
(`published_at` records it). Workers take a job by an atomic conditional update that sets a
lease; a lease that runs out lets another worker take the job again. A result is unique per
job and model version, so a job that runs twice still has one result.
"""

import uuid
from enum import StrEnum
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from tessera.accounts.models import Organization
from tessera.accounts.policy import OrganizationKind
from tessera.records.kinds import subject_of
from tessera.records.models import MediaAsset, SubjectKey, VisitKey
from tessera.storage import local_bundle
from tessera.tutoring.models import LibraryVersion

SYNTHETIC_NOTICE = "Demo model trained on synthetic data: no clinical or educational validity."


class ModelVersion(models.Model):
    """A trained mlcore bundle that can serve one kind of organization."""

    class Status(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"
        REJECTED = "rejected", "Rejected"

    name = models.CharField(max_length=120, unique=True)
    serves = models.CharField(max_length=16, choices=OrganizationKind.choices)
    bundle_path = models.CharField(max_length=500, help_text="Relative to MLCORE_MODELS_DIR.")
    metrics = models.JSONField(default=dict, blank=True)
    trained_on_synthetic_data = models.BooleanField(
        default=False,
        help_text="Trained (or fine-tuned from a model trained) on generated data: a demo, with "
        "no clinical or educational validity. Every result of it says so.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["serves"], condition=Q(status="active"), name="one_active_model_per_kind"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_status_display()})"

    @property
    def notice(self) -> str:
        """What every result of this version must say about it, or ""."""
        return SYNTHETIC_NOTICE if self.trained_on_synthetic_data else ""

    @property
    def bundle_dir(self) -> Path:
        """The bundle's directory on this host (fetched from the bucket the first time, where
        the installation keeps its files in one)."""
        return local_bundle(self.bundle_path)


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PREPROCESSING = "preprocessing", "Preprocessing"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Stage(StrEnum):
    """The pipeline's two steps: a job is published to one, on its queue (see publish)."""

    PREPROCESS = "preprocess"
    INFER = "infer"


class Activity(StrEnum):
    """What a job that has not finished is doing, as its card says it (`AnalysisJob.stage`);
    also the names of its timings."""

    NONE = ""  # queued, or finished
    WAITING_FOR_TRANSCRIPT = "waiting for the transcript"
    PREPROCESSING = "preprocessing"
    WAITING_FOR_INFERENCE = "waiting for inference"
    INFERENCE = "inference"
    WAITING_TO_RETRY = "waiting to retry"


class Timing(StrEnum):
    """Where a job's time went, finer than its activities: seconds in `AnalysisJob.timings`
    beside "preprocessing" and "inference" (bench/pipeline.py prints them as a breakdown)."""

    QUEUED = "queued"  # published → a preprocessing worker took it (the broker's wait)
    CLAIMS = "claims"  # the conditional updates that take and hand over the job
    FEATURE_CACHE = "feature cache"  # reading and writing the cached features
    DECODING = "decoding"  # the files decoded and preprocessed for the model
    WAITING_FOR_INFERENCE = "waiting for inference"  # handed over → its batch began
    WAITING_FOR_COMPANY = "waiting for company"  # its batch gathering others (at most T)
    FORWARD = "forward"  # the batch's forward pass (the whole batch's seconds)
    EXPLANATION = "explanation"  # the batch's Grad-CAM, leave-one-out and rationales
    RESULT_WRITE = "result write"  # its result stored, announced and audited


# How a person calls each input of the model.
INPUT_NOUN = {"image": "image", "text": "text", "audio": "recording", "speech_text": "transcript"}
# How a result says an input was left out, where "left out" is not the whole story: a recording's
# sound can be left out while its transcript is read, and a transcript left out of the affect
# estimate is still read for tutoring suggestions.
LEFT_OUT_NOTE = {
    "audio": "The recording's sound was left out: {reason}",
    "speech_text": "What the recording says was not read for the affect estimate: {reason}",
}


class JobTask(models.TextChoices):
    DIAGNOSIS = "diagnosis", "Diagnosis suggestions"
    EMOTION = "emotion", "Emotion / affect"
    TUTORING = "tutoring", "Tutoring suggestions"
    ALL = "all", "Everything the organization allows"


class AnalysisJob(models.Model):
    ORGANIZATION_LOOKUP = "organization"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="jobs")
    visit_key = models.ForeignKey(VisitKey, on_delete=models.CASCADE, related_name="jobs")
    media = models.ManyToManyField(MediaAsset, related_name="jobs")
    task = models.CharField(max_length=16, choices=JobTask.choices)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    stage = models.CharField(max_length=32, blank=True)  # an Activity
    progress = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="jobs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    retry_after = models.DateTimeField(
        null=True, blank=True, help_text="Backing off after a transient error until then."
    )
    timings = models.JSONField(
        default=dict,
        blank=True,
        help_text="Seconds spent per stage, and how many cases shared the inference batch.",
    )
    left_out = models.JSONField(
        default=dict,
        blank=True,
        help_text="Input (image, text, audio: a recording's sound; speech_text: its transcript, "
        "which is then not read for affect) → why the law or the policy kept it out.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "updated_at"], name="job_status_updated"),
            models.Index(fields=["organization", "-created_at"], name="job_org_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_task_display()} job {str(self.pk)[:8]} ({self.get_status_display()})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED


class AnalysisResult(models.Model):
    ORGANIZATION_LOOKUP = "organization"
    AUDIT_TYPE = "result"
    SUBJECT_LOOKUPS = {
        "patient": "job__visit_key__encounter__patient",
        "student": "job__visit_key__learning_session__student",
    }

    job = models.ForeignKey(AnalysisJob, on_delete=models.CASCADE, related_name="results")
    organization = models.ForeignKey(
        Organization,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The job's, kept here so that cohort queries read one indexed table.",
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="results"
    )
    diagnosis = models.JSONField(default=dict, blank=True, help_text="Label → probability.")
    findings = models.JSONField(default=list, blank=True)
    emotion = models.JSONField(default=dict, blank=True, help_text="Label → probability.")
    emotion_label = models.CharField(max_length=64, blank=True)
    modalities_used = models.JSONField(default=list)
    left_out = models.JSONField(
        default=dict,
        blank=True,
        help_text="Input → why the law or the policy kept it out (the job's, as it ran).",
    )
    contributions = models.JSONField(
        default=dict,
        help_text="Task (a finding, or emotion) → input → its Shapley value: how much that "
        "input moved the probability of the answer.",
    )
    uncertainty = models.FloatField()
    abstain = models.BooleanField(help_text="Some answer needs a person (`needs_person`).")
    needs_person = models.JSONField(
        default=dict,
        blank=True,
        help_text="Task (diagnosis, emotion) → why it needs a person: {reason: evidence_missing, "
        "unlike_training or low_confidence, detail: a sentence}. A task not listed answered.",
    )
    # Ranked suggestions, each as mlcore.suggestions.Suggestion.to_dict writes it: a rank and
    # why, never a percentage.
    tutoring = models.JSONField(default=list, blank=True)
    tutoring_library = models.ForeignKey(
        LibraryVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The version of the organization's intervention library they came from.",
    )
    rationale = models.TextField(
        blank=True, help_text="Written by the site's local language model, where one is set up."
    )
    rationales = models.JSONField(
        default=dict,
        blank=True,
        help_text="Task (diagnosis, emotion) → one sentence generated from the evidence the "
        "model used: each input's contribution, where the heatmap peaks, the sentence of the "
        "text that moved the answer most.",
    )
    explanation = models.JSONField(
        default=dict,
        blank=True,
        help_text="Where in the image the top finding came from: a Grad-CAM heatmap grid.",
    )
    urgency = models.FloatField(
        default=0.0, help_text="The highest finding probability: dashboards sort by it."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "model_version"], name="one_result_per_job_and_model"
            )
        ]
        indexes = [
            # weekly affect counts read this index alone, without visiting the table
            models.Index(
                fields=["organization", "created_at"],
                include=["emotion_label"],
                name="result_org_created",
            ),
        ]

    def __str__(self) -> str:
        return f"Result of {self.job}"

    def save(self, *args, **kwargs) -> None:
        if self.organization_id is None:
            self.organization_id = self.job.organization_id
        super().save(*args, **kwargs)

    @property
    def contributions_by_task(self) -> list[dict]:
        """For each answer the result gives, what moved it: every input with its share of the
        movement (largest first) and whether it raised the answer's probability or lowered
        it."""
        answers = []
        # Findings first, most probable first, then the affect: as the card lists them (a
        # database may keep the keys in any order).
        ordered = sorted(
            self.contributions.items(),
            key=lambda item: (item[0] == "emotion", -self.diagnosis.get(item[0], 0.0), item[0]),
        )
        for task, values in ordered:
            total = sum(abs(value) for value in values.values())
            answers.append(
                {
                    "answer": f"affect: {self.emotion_label}" if task == "emotion" else task,
                    "inputs": [
                        {
                            "input": INPUT_NOUN.get(modality, modality),
                            "share": abs(value) / total if total else 0.0,
                            "raised": value >= 0,
                            "points": round(abs(value) * 100),  # percentage points
                        }
                        for modality, value in sorted(
                            values.items(), key=lambda kv: (-abs(kv[1]), kv[0])
                        )
                    ],
                }
            )
        return answers

    @property
    def left_out_notes(self) -> list[str]:
        """A sentence for each input the law or the policy kept out of this analysis."""
        notes = []
        for modality, reason in self.left_out.items():
            note = LEFT_OUT_NOTE.get(modality, "The {noun} was left out: {reason}")
            notes.append(note.format(noun=INPUT_NOUN[modality], reason=reason))
        return notes


class LatestAnalysis(models.Model):
    """What the newest analyses of one patient or student say, kept up to date by the job
    services whenever a job is requested or finishes, so that dashboards sort and filter
    thousands of subjects with indexes instead of reading their results."""

    ORGANIZATION_LOOKUP = "organization"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    subject_key = models.OneToOneField(
        SubjectKey, on_delete=models.CASCADE, related_name="latest_analysis"
    )
    job = models.ForeignKey(
        AnalysisJob,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The job requested last.",
    )
    result = models.ForeignKey(
        AnalysisResult,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The newest result.",
    )
    urgency = models.FloatField(null=True, blank=True, help_text="The newest result's.")
    abstained = models.BooleanField(null=True, blank=True, help_text="The newest result's.")
    recent_affects = models.JSONField(
        default=list, blank=True, help_text="The last affect labels suggested, newest first."
    )
    concern_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Since when the recent affects keep being concerning (analytics.attention).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "latest analyses"
        indexes = [
            models.Index(fields=["organization", "concern_since"], name="latest_concern"),
            models.Index(fields=["organization", "abstained"], name="latest_abstained"),
        ]

    def __str__(self) -> str:
        return f"Latest analysis of {subject_of(self)}"


class Feedback(models.Model):
    """A professional's verdict on a result: it becomes labelled data for the next model."""

    ORGANIZATION_LOOKUP = "result__organization"
    AUDIT_TYPE = "feedback"
    SUBJECT_LOOKUPS = {
        "patient": "result__job__visit_key__encounter__patient",
        "student": "result__job__visit_key__learning_session__student",
    }

    class Kind(models.TextChoices):
        CONFIRM = "confirm", "Confirmed"
        CORRECT = "correct", "Corrected"
        USEFUL = "useful", "Suggestion useful"
        NOT_USEFUL = "not_useful", "Suggestion not useful"
        TRIED = "tried", "Tried it"
        HELPED = "helped", "It helped"
        DID_NOT_HELP = "did_not_help", "It did not help"

    result = models.ForeignKey(AnalysisResult, on_delete=models.CASCADE, related_name="feedback")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    diagnosis = models.JSONField(
        null=True, blank=True, help_text="Corrected findings (a list of labels), for 'correct'."
    )
    emotion_label = models.CharField(max_length=64, blank=True, help_text="Corrected affect label.")
    intervention = models.CharField(
        max_length=64,
        blank=True,
        help_text="The suggestion judged (useful / not useful), tried, or whether it helped.",
    )
    comment = models.TextField(blank=True, max_length=2000)
    given_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.result}"


class TrainingRun(models.Model):
    """A model trained from the feedback professionals gave: evaluated against the active model
    on held-out cases, and promoted only if it is not worse."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PROMOTED = "promoted", "Promoted"
        REJECTED = "rejected", "Rejected: not better than the active model"
        FAILED = "failed", "Failed"

    serves = models.CharField(max_length=16, choices=OrganizationKind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    base_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="+", help_text="Fine-tuned from."
    )
    candidate = models.OneToOneField(
        ModelVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="training_run",
        help_text="The version this run trained.",
    )
    cases = models.PositiveIntegerField(default=0, help_text="Labelled cases from feedback.")
    metrics = models.JSONField(
        default=dict, blank=True, help_text="Held-out macro-F1 of the candidate and the base."
    )
    message = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Training run {self.pk} for {self.get_serves_display()}s ({self.status})"


class ResultDelivery(models.Model):
    """A result sent to one of the organization's systems (interop.deliveries): to its PACS, the
    SR and heatmap (by C-STORE or STOW-RS); to its FHIR server, the DiagnosticReport with its
    PDF, once for each status the report reaches. Tried until the destination stores it all or
    the attempts run out: the log an admin reads when a result did not arrive. (It names its
    PDF report by the model's label, "reports.Report": the reports room sits above this one.)"""

    ORGANIZATION_LOOKUP = "result__organization"

    class Destination(models.TextChoices):
        PACS = "pacs", "PACS"
        FHIR = "fhir", "FHIR server"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    result = models.ForeignKey(AnalysisResult, on_delete=models.CASCADE, related_name="deliveries")
    destination = models.CharField(
        max_length=4, choices=Destination.choices, default=Destination.PACS
    )
    report_status = models.CharField(
        max_length=12,
        blank=True,
        help_text="FHIR: the DiagnosticReport status sent (preliminary, final, amended).",
    )
    report = models.ForeignKey(
        "reports.Report",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="FHIR: the PDF report sent as the DiagnosticReport's presentedForm.",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_error = models.CharField(max_length=500, blank=True)
    sent_objects = models.JSONField(
        default=list,
        blank=True,
        help_text="What the destination stored: SOP instance UIDs (PACS), resource locations "
        "(FHIR).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "result deliveries"

    def __str__(self) -> str:
        return f"Result {self.result_id} to the {self.get_destination_display()} ({self.status})"
