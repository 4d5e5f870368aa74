"""Patients and students, their visits and sessions, and the media uploaded for them.

Deletion is always explicit and real: nothing here is soft-deleted. Organizations protect their
records (an organization with records cannot be deleted by accident); deleting a patient or a
student deletes their encounters or sessions and media, after the admin's confirmation page
listed all of it.
"""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q

from tessera.accounts.models import Organization
from tessera.accounts.policy import OrganizationKind
from tessera.text import ae_title, printable_name


class Sex(models.TextChoices):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other"
    UNKNOWN = "unknown", "Unknown"


class Cohort(models.Model):
    """A ward (clinic) or a class (school)."""

    ORGANIZATION_LOOKUP = "organization"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="cohorts")
    name = models.CharField(max_length=120, validators=[printable_name])
    description = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], name="cohort_name_unique_in_organization"
            )
        ]
        ordering = ["organization__name", "name"]

    def __str__(self) -> str:
        return self.name


class KeyedRecord(models.Model):
    """A person or a visit, which other rows name by a key of its own (a SubjectKey, a
    VisitKey), made in the same transaction as the record."""

    KEY: str  # the key's related name

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        creating = self._state.adding
        with transaction.atomic():
            super().save(*args, **kwargs)
            if creating:
                link = self._meta.get_field(self.KEY).field  # the key's one-to-one to us
                link.model.objects.create(**{link.name: self})


class Subject(KeyedRecord):
    """What patients and students share: an organization, an identity, a pseudonym."""

    ORGANIZATION_LOOKUP = "organization"
    KEY = "subject_key"

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="%(class)ss"
    )
    full_name = models.CharField(max_length=200, validators=[printable_name])
    birth_date = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=8, choices=Sex.choices, default=Sex.UNKNOWN)
    cohort = models.ForeignKey(
        Cohort, on_delete=models.SET_NULL, null=True, blank=True, related_name="%(class)ss"
    )
    # Stands in for the person wherever identity must not travel (de-identified DICOM, exports).
    pseudonym = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    @classmethod
    def kept_elsewhere(cls, organization: Organization) -> str | None:
        """Why `organization` cannot keep this kind of person ("students belong to schools"),
        or None when it can: the rule the model's validation and the API both word."""
        if organization.kind == cls.ORGANIZATION_KIND:
            return None
        kept_by = OrganizationKind(cls.ORGANIZATION_KIND).label.lower()
        return f"{cls._meta.verbose_name_plural} belong to {kept_by}s"

    def clean(self) -> None:
        if (
            self.cohort_id
            and self.organization_id
            and self.cohort.organization_id != self.organization_id
        ):
            raise ValidationError({"cohort": "This cohort belongs to another organization."})
        refusal = self.organization_id and self.kept_elsewhere(self.organization)
        if refusal:
            raise ValidationError({"organization": f"{refusal[0].upper()}{refusal[1:]}."})


class Patient(Subject):
    ORGANIZATION_KIND = OrganizationKind.CLINIC
    AUDIT_TYPE = "patient"
    SUBJECT_LOOKUPS = {"patient": "pk"}

    mrn = models.CharField(
        "MRN",
        max_length=64,
        validators=[printable_name],
        help_text="Medical record number, unique in the organization.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "mrn"], name="mrn_unique_in_organization"
            )
        ]
        ordering = ["full_name"]

    def __str__(self) -> str:
        return f"{self.full_name} (MRN {self.mrn})"


class Student(Subject):
    ORGANIZATION_KIND = OrganizationKind.SCHOOL
    AUDIT_TYPE = "student"
    SUBJECT_LOOKUPS = {"student": "pk"}

    student_number = models.CharField(
        max_length=64, validators=[printable_name], help_text="Unique in the organization."
    )
    grade = models.CharField("Year / grade", max_length=32, blank=True, validators=[printable_name])

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "student_number"],
                name="student_number_unique_in_organization",
            )
        ]
        ordering = ["full_name"]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.student_number})"


class VisitRecord(KeyedRecord):
    """What encounters and learning sessions share: the files attached to them, through their
    key (VisitKey)."""

    KEY = "visit_key"

    class Meta:
        abstract = True

    @property
    def media(self):
        """This visit's files (a related manager: `.all()`, `.filter()`, prefetched by
        `visit_key__media`)."""
        return self.visit_key.media


class Encounter(VisitRecord):
    """A patient visit."""

    ORGANIZATION_LOOKUP = "patient__organization"
    AUDIT_TYPE = "encounter"
    SUBJECT_LOOKUPS = {"patient": "patient"}

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="encounters")
    occurred_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True, validators=[printable_name])
    clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at"]

    def __str__(self) -> str:
        return f"{self.patient.full_name}, {self.occurred_at:%Y-%m-%d}"


class LearningSession(VisitRecord):
    """A student's session: a lesson, an assignment, a spoken exercise."""

    ORGANIZATION_LOOKUP = "student__organization"
    AUDIT_TYPE = "learning_session"
    SUBJECT_LOOKUPS = {"student": "student"}

    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="learning_sessions")
    occurred_at = models.DateTimeField()
    subject_area = models.CharField(
        "Subject",
        max_length=80,
        validators=[printable_name],
        help_text="e.g. Mathematics, English.",
    )
    title = models.CharField(max_length=200, blank=True, validators=[printable_name])
    teacher = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at"]

    def __str__(self) -> str:
        return f"{self.student.full_name}, {self.subject_area} {self.occurred_at:%Y-%m-%d}"


def exactly_one_of(first: str, second: str) -> Q:
    """Of two nullable foreign keys, exactly one is set."""
    return Q(**{f"{first}__isnull": False, f"{second}__isnull": True}) | Q(
        **{f"{first}__isnull": True, f"{second}__isnull": False}
    )


class VisitKey(models.Model):
    """The one key by which media and analysis jobs name their visit, an encounter or a
    learning session, instead of a pair of nullable keys. Each visit has exactly one, made when
    the visit is first saved (KeyedRecord); it goes with its visit, and takes the visit's
    files and jobs with it. Encounters and sessions keep their own ids (the API's, the access
    log's): the key has its own."""

    encounter = models.OneToOneField(
        Encounter, on_delete=models.CASCADE, null=True, blank=True, related_name="visit_key"
    )
    learning_session = models.OneToOneField(
        LearningSession,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="visit_key",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=exactly_one_of("encounter", "learning_session"),
                name="visit_key_names_one_visit",
            )
        ]

    def __str__(self) -> str:
        return f"Key of {self.encounter or self.learning_session}"


class SubjectKey(models.Model):
    """The one key by which reports and latest analyses name their person, a patient or a
    student: the VisitKey of people."""

    patient = models.OneToOneField(
        Patient, on_delete=models.CASCADE, null=True, blank=True, related_name="subject_key"
    )
    student = models.OneToOneField(
        Student, on_delete=models.CASCADE, null=True, blank=True, related_name="subject_key"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=exactly_one_of("patient", "student"),
                name="subject_key_names_one_person",
            )
        ]

    def __str__(self) -> str:
        return f"Key of {self.patient or self.student}"


class MediaKind(models.TextChoices):
    DICOM = "dicom", "Medical image (DICOM)"
    CLINICAL_NOTE = "clinical_note", "Clinical note"
    SPEECH = "speech", "Speech recording"
    LEARNER_TEXT = "learner_text", "Learner text"
    LEARNER_AUDIO = "learner_audio", "Learner audio"


ENCOUNTER_MEDIA = (MediaKind.DICOM, MediaKind.CLINICAL_NOTE, MediaKind.SPEECH)
# Which input of the multimodal model each kind of file is.
MODALITY_OF = {
    MediaKind.DICOM: "image",
    MediaKind.CLINICAL_NOTE: "text",
    MediaKind.LEARNER_TEXT: "text",
    MediaKind.SPEECH: "audio",
    MediaKind.LEARNER_AUDIO: "audio",
}
LEARNING_MEDIA = (MediaKind.LEARNER_TEXT, MediaKind.LEARNER_AUDIO)


class MediaAsset(models.Model):
    """One uploaded file, validated and stored content-addressed (by sha256) under MEDIA_ROOT.

    The content never changes after upload: a correction is a new asset.
    """

    ORGANIZATION_LOOKUP = "organization"
    AUDIT_TYPE = "media"
    SUBJECT_LOOKUPS = {
        "patient": "visit_key__encounter__patient",
        "student": "visit_key__learning_session__student",
    }
    Kind = MediaKind

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="media")
    visit_key = models.ForeignKey(VisitKey, on_delete=models.CASCADE, related_name="media")
    kind = models.CharField(max_length=16, choices=MediaKind.choices)
    sha256 = models.CharField(max_length=64, db_index=True, editable=False)
    size_bytes = models.BigIntegerField(editable=False)
    content_type = models.CharField(max_length=100, editable=False)
    original_filename = models.CharField(max_length=255, blank=True, editable=False)
    metadata = models.JSONField(default=dict, blank=True, editable=False)
    storage_path = models.CharField(
        max_length=200, editable=False, help_text="Relative to MEDIA_ROOT."
    )
    encrypted = models.BooleanField(
        default=False, editable=False, help_text="Stored as Fernet tokens (encryption at rest)."
    )
    original_sha256 = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        editable=False,
        help_text="The DICOM file as uploaded, before de-identification, kept encrypted when "
        "the organization opts in; empty otherwise.",
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.sha256[:12]}"


class DicomSender(models.Model):
    """A PACS or modality allowed to send images to the DICOM listener (records.dimse), by the
    calling AE title it announces: its images are the organization's. Any other calling AE
    title is refused at association."""

    ORGANIZATION_LOOKUP = "organization"
    AUDIT_TYPE = "dicom_sender"
    SUBJECT_LOOKUPS: dict[str, str] = {}  # a setting: nobody's data

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="dicom_senders"
    )
    ae_title = models.CharField(
        "calling AE title",
        max_length=16,
        unique=True,
        validators=[ae_title],
        help_text="As the PACS announces itself (its own AE title), exactly.",
    )
    description = models.CharField(max_length=200, blank=True, validators=[printable_name])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ae_title"]

    def __str__(self) -> str:
        return self.ae_title


class DicomOrigin(models.Model):
    """The way back from a de-identified DICOM image to the PACS: the stand-in UIDs it is
    stored under, and, sealed (`records.origins`), the original study, series and instance
    UIDs and the accession number. Only an organization's admins read the sealed part, and
    every read is audited. It goes with its image."""

    ORGANIZATION_LOOKUP = "media__organization"
    AUDIT_TYPE = "dicom_origin"
    SUBJECT_LOOKUPS = {"patient": "media__visit_key__encounter__patient"}

    media = models.OneToOneField(MediaAsset, on_delete=models.CASCADE, related_name="origin")
    study_uid = models.CharField(
        max_length=64, db_index=True, editable=False, help_text="The stand-in study UID."
    )
    series_uid = models.CharField(max_length=64, editable=False)
    sop_instance_uid = models.CharField(max_length=64, db_index=True, editable=False)
    sop_class_uid = models.CharField(max_length=64, editable=False)
    accession_key = models.CharField(
        max_length=40,
        blank=True,
        db_index=True,
        editable=False,
        help_text="A keyed hash of the accession number (records.deidentify.accession_key); "
        "empty when the study had none.",
    )
    sealed = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"PACS origin of {self.media}"


class TranscriptStatus(models.TextChoices):
    QUEUED = "queued", "Waiting to be transcribed"
    RUNNING = "running", "Being transcribed"
    DONE = "done", "Transcribed"
    NO_SPEECH = "no_speech", "No speech found"
    NOT_UNDERSTOOD = "not_understood", "Not understood"
    FAILED = "failed", "Could not be transcribed"


TRANSCRIPT_FINISHED = (
    TranscriptStatus.DONE,
    TranscriptStatus.NO_SPEECH,
    TranscriptStatus.NOT_UNDERSTOOD,
    TranscriptStatus.FAILED,
)


class Transcript(models.Model):
    """What was said in a recording, with each segment's time, and the model that heard it.

    The segments are the person's words: they are kept as JSON, sealed with the media
    encryption keys when the recording itself is stored encrypted (`records.transcription`
    writes them, `records.selectors` reads them). The transcript goes with its recording."""

    ORGANIZATION_LOOKUP = "media__organization"
    AUDIT_TYPE = "transcript"
    SUBJECT_LOOKUPS = {
        "patient": "media__visit_key__encounter__patient",
        "student": "media__visit_key__learning_session__student",
    }

    media = models.OneToOneField(MediaAsset, on_delete=models.CASCADE, related_name="transcript")
    status = models.CharField(
        max_length=16, choices=TranscriptStatus.choices, default=TranscriptStatus.QUEUED
    )
    message = models.CharField(
        max_length=300, blank=True, help_text="Why there is no transcript, in plain words."
    )
    speech_model = models.CharField(max_length=120, blank=True)
    language = models.CharField(max_length=16, blank=True)
    duration_seconds = models.FloatField(default=0.0)
    transcribed_seconds = models.FloatField(
        default=0.0, help_text="How far into the recording transcription has got."
    )
    sealed_segments = models.TextField(blank=True, editable=False)
    encrypted = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(transcribed_seconds__gte=0)
                & Q(transcribed_seconds__lte=models.F("duration_seconds") + 1),
                name="transcript_progress_within_recording",
            )
        ]

    def __str__(self) -> str:
        return f"Transcript of {self.media}"

    @property
    def finished(self) -> bool:
        return self.status in TRANSCRIPT_FINISHED

    @property
    def progress(self) -> float:
        """The share of the recording transcribed so far, 0 to 1."""
        if self.finished:
            return 1.0
        if not self.duration_seconds:
            return 0.0
        return min(self.transcribed_seconds / self.duration_seconds, 1.0)
