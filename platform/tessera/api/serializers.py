"""What the API reads and writes. Every serializer lists its fields; what a client may write
is named in `writable` (never the organization of an existing record, a status, an owner or a
staff flag). A referenced id must name an object the user can see, else it is refused as if it
did not exist."""

import re

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tessera.accounts.models import ApiToken, Membership, Organization, Role
from tessera.accounts.selectors import organizations_of, scoped_to
from tessera.jobs.models import AnalysisJob, AnalysisResult, Feedback, JobTask, ModelVersion
from tessera.records.kinds import CLINIC, KINDS, SCHOOL, RecordKind, kind_of
from tessera.records.models import (
    Cohort,
    Encounter,
    LearningSession,
    MediaAsset,
    MediaKind,
    Patient,
    Sex,
    Student,
    Transcript,
)
from tessera.records.selectors import readable_segments
from tessera.reports.models import Report, ReportStatus
from tessera.text import printable_name
from tessera.tutoring import services as library
from tessera.tutoring.models import LibraryVersion
from tessera.webhooks.models import Event, WebhookDelivery, WebhookSubscription


class VisibleRelatedField(serializers.PrimaryKeyRelatedField):
    """An id of an object in one of the requesting user's organizations."""

    default_error_messages = {
        "does_not_exist": "no {model} with id {pk_value} among the records you can see",
        "incorrect_type": "an id (a number) is expected, not {data_type}",
    }

    def __init__(self, model, **kwargs) -> None:
        self.model = model
        super().__init__(queryset=model.objects.all(), **kwargs)

    def get_queryset(self):
        user = self.context["request"].user
        return scoped_to(self.model.objects.all(), organizations=organizations_of(user=user))

    def to_internal_value(self, data):
        if isinstance(data, bool) or not re.fullmatch(r"-?\d+", str(data)):
            self.fail("incorrect_type", data_type=type(data).__name__)
        pk = int(data)
        found = self.get_queryset().filter(pk=pk).first() if 0 < pk < 2**63 else None
        if found is None:
            self.fail("does_not_exist", model=self.model._meta.verbose_name, pk_value=data)
        return found


class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "kind", "jurisdiction", "allowed_analyses", "role"]
        read_only_fields = fields

    def get_role(self, organization: Organization) -> str | None:
        roles = self.context.get("roles", {})
        return roles.get(organization.pk)


class MemberSerializer(serializers.ModelSerializer):
    """A member: added by username (an existing account), changed by role only."""

    username = serializers.CharField(source="user.username", max_length=150)
    organization = VisibleRelatedField(Organization)
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["id", "username", "organization", "role", "created_at"]
        read_only_fields = ["id", "created_at"]


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class FormNulls:
    """A form body (multipart, urlencoded) has no null: `null` in a field that may be null
    means null there, as it does in JSON. (DRF reads an empty form value of such a field as
    null already.)"""

    def to_internal_value(self, data):
        if hasattr(data, "getlist"):  # a QueryDict: the body was a form
            nulls = [
                name
                for name, field in self.fields.items()
                if field.allow_null and data.get(name) == "null"
            ]
            if nulls:
                data = data.copy()
                for name in nulls:
                    data[name] = ""
        return super().to_internal_value(data)


class _InOneOrganizationSerializer(FormNulls, serializers.ModelSerializer):
    """Created in one of the user's organizations, and never moved to another."""

    organization = VisibleRelatedField(Organization)
    noun = "a record"

    def validate_organization(self, organization: Organization) -> Organization:
        if self.instance is not None and organization != self.instance.organization:
            raise serializers.ValidationError(f"{self.noun} cannot move to another organization")
        return organization


class CohortSerializer(_InOneOrganizationSerializer):
    noun = "a cohort"

    class Meta:
        model = Cohort
        validators = []  # uniqueness: the model's own check says it in plain words
        fields = ["id", "organization", "name", "description", "created_at"]
        read_only_fields = ["id", "created_at"]


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]


class NewTokenSerializer(TokenSerializer):
    """Answers the creation of a token: the only time its secret is shown."""

    key = serializers.CharField(read_only=True)

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key"]


class _SubjectSerializer(_InOneOrganizationSerializer):
    """A patient or a student. The services validate them (a cohort of another organization
    too); this says early, naming the organization, that it keeps no such people."""

    cohort = VisibleRelatedField(Cohort, required=False, allow_null=True)
    sex = serializers.ChoiceField(choices=Sex.choices, required=False)

    def validate_organization(self, organization: Organization) -> Organization:
        organization = super().validate_organization(organization)
        refusal = self.Meta.model.kept_elsewhere(organization)
        if refusal:
            kind = organization.get_kind_display().lower()
            raise serializers.ValidationError(f"{organization.name} is a {kind}: {refusal}")
        return organization


class PatientSerializer(_SubjectSerializer):
    class Meta:
        model = Patient
        validators = []  # uniqueness: the model's own check says it in plain words
        fields = [
            "id",
            "organization",
            "mrn",
            "full_name",
            "birth_date",
            "sex",
            "cohort",
            "pseudonym",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "pseudonym", "created_at", "updated_at"]


class StudentSerializer(_SubjectSerializer):
    class Meta:
        model = Student
        validators = []  # uniqueness: the model's own check says it in plain words
        fields = [
            "id",
            "organization",
            "student_number",
            "full_name",
            "grade",
            "birth_date",
            "sex",
            "cohort",
            "pseudonym",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "pseudonym", "created_at", "updated_at"]


class EncounterSerializer(serializers.ModelSerializer):
    patient = VisibleRelatedField(Patient)

    class Meta:
        model = Encounter
        fields = ["id", "patient", "occurred_at", "reason", "clinician", "created_at"]
        read_only_fields = ["id", "clinician", "created_at"]


class LearningSessionSerializer(serializers.ModelSerializer):
    student = VisibleRelatedField(Student)

    class Meta:
        model = LearningSession
        fields = ["id", "student", "occurred_at", "subject_area", "title", "teacher", "created_at"]
        read_only_fields = ["id", "teacher", "created_at"]


def visit_id_field(kind: RecordKind) -> serializers.IntegerField:
    """The id of a media asset's or a job's visit when it is of `kind` (`encounter`,
    `learning_session`), else null."""
    return serializers.IntegerField(
        source=f"visit_key.{kind.visit_field}_id", read_only=True, allow_null=True
    )


def subject_id_field(kind: RecordKind) -> serializers.IntegerField:
    """The id of the person a report is about when they are of `kind` (`patient`, `student`),
    else null."""
    return serializers.IntegerField(
        source=f"subject_key.{kind.subject_field}_id", read_only=True, allow_null=True
    )


class SegmentSerializer(serializers.Serializer):
    start = serializers.FloatField(help_text="Seconds from the recording's start.")
    end = serializers.FloatField()
    text = serializers.CharField()


class TranscriptSerializer(serializers.ModelSerializer):
    """What was said in a recording, made by the local speech model on the `speech` queue."""

    progress = serializers.FloatField(
        read_only=True, help_text="The share of the recording transcribed so far, 0 to 1."
    )
    segments = serializers.SerializerMethodField()
    text = serializers.SerializerMethodField(help_text="The segments, joined.")

    class Meta:
        model = Transcript
        fields = [
            "status",
            "message",
            "speech_model",
            "language",
            "duration_seconds",
            "progress",
            "segments",
            "text",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(SegmentSerializer(many=True))
    def get_segments(self, transcript: Transcript) -> list[dict]:
        return [
            {"start": segment.start, "end": segment.end, "text": segment.text}
            for segment in readable_segments(transcript)
        ]

    def get_text(self, transcript: Transcript) -> str:
        return " ".join(segment.text for segment in readable_segments(transcript))


class PacsOriginSerializer(serializers.Serializer):
    """A de-identified DICOM image's original identity in the PACS (records.deidentify)."""

    study_instance_uid = serializers.CharField(source="study_uid", read_only=True)
    series_instance_uid = serializers.CharField(source="series_uid", read_only=True)
    sop_instance_uid = serializers.CharField(read_only=True)
    accession_number = serializers.CharField(
        read_only=True, help_text="The study's accession number; empty when it had none."
    )


class MediaSerializer(serializers.ModelSerializer):
    encounter = visit_id_field(CLINIC)
    learning_session = visit_id_field(SCHOOL)
    download = serializers.HyperlinkedIdentityField(view_name="api:media-download")
    original_kept = serializers.SerializerMethodField(
        help_text="The DICOM file as uploaded is kept (encrypted); admins get it from "
        "`…/original/`."
    )
    transcript = TranscriptSerializer(
        read_only=True, allow_null=True, help_text="A recording's transcript; null otherwise."
    )

    class Meta:
        model = MediaAsset
        fields = [
            "id",
            "kind",
            "encounter",
            "learning_session",
            "original_filename",
            "content_type",
            "size_bytes",
            "sha256",
            "metadata",
            "encrypted",
            "original_kept",
            "transcript",
            "created_at",
            "download",
        ]
        read_only_fields = fields

    def get_original_kept(self, asset: MediaAsset) -> bool:
        return bool(asset.original_sha256)


def with_one_visit(attrs: dict, refusal: str) -> dict:
    """The fields with the one visit they name (an `encounter` or a `learning_session`) under
    `visit`; `refusal` when they name none or both."""
    named = [attrs.pop(kind.visit_field) for kind in KINDS if kind.visit_field in attrs]
    if len(named) != 1:
        raise serializers.ValidationError(refusal)
    return {**attrs, "visit": named[0]}


class MediaUploadSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=MediaKind.choices)
    encounter = VisibleRelatedField(Encounter, required=False)
    learning_session = VisibleRelatedField(LearningSession, required=False)
    file = serializers.FileField(allow_empty_file=True)

    def validate(self, attrs: dict) -> dict:
        return with_one_visit(
            attrs,
            "name exactly one of encounter (clinic media) or learning_session (school media)",
        )


class SeriesUploadSerializer(serializers.Serializer):
    encounter = VisibleRelatedField(Encounter)
    file = serializers.FileField(
        allow_empty_file=True, help_text="A zip of DICOM files (one series or study)."
    )


class SeriesSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    media = MediaSerializer(many=True)


class EraseSerializer(serializers.Serializer):
    confirm = serializers.CharField(
        max_length=64, help_text="The person's MRN or student number, as a deliberate act."
    )


class ErasedSerializer(serializers.Serializer):
    erased = serializers.DictField(child=serializers.IntegerField())


def left_out_field() -> serializers.DictField:
    return serializers.DictField(
        child=serializers.CharField(),
        read_only=True,
        help_text="Input (image, text, audio) → why the law or the organization's policy kept "
        "it out of the analysis.",
    )


class JobSerializer(serializers.ModelSerializer):
    encounter = visit_id_field(CLINIC)
    learning_session = visit_id_field(SCHOOL)
    model_version = serializers.CharField(source="model_version.name", read_only=True)
    left_out = left_out_field()
    result = serializers.SerializerMethodField()

    class Meta:
        model = AnalysisJob
        fields = [
            "id",
            "task",
            "status",
            "stage",
            "progress",
            "attempts",
            "error_code",
            "error_message",
            "encounter",
            "learning_session",
            "media",
            "left_out",
            "model_version",
            "result",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_result(self, job: AnalysisJob) -> int | None:
        results = list(job.results.all())  # prefetched
        return results[0].pk if results else None


class JobRequestSerializer(serializers.Serializer):
    task = serializers.ChoiceField(choices=JobTask.choices, default=JobTask.ALL)
    encounter = VisibleRelatedField(Encounter, required=False)
    learning_session = VisibleRelatedField(LearningSession, required=False)
    media = VisibleRelatedField(MediaAsset, many=True, required=False)

    def validate(self, attrs: dict) -> dict:
        return with_one_visit(attrs, "name exactly one of encounter or learning_session to analyse")


class ResultSerializer(serializers.ModelSerializer):
    model_version = serializers.CharField(source="model_version.name", read_only=True)
    tutoring = serializers.ListField(
        child=serializers.DictField(),
        read_only=True,
        help_text="Tutoring suggestions, best first: `rank`, the intervention's `id`, `title` and "
        "`description`, `matches` (the affect and subject it was chosen for), `reason` (why, in "
        "a sentence), `rationale` (what the library says it is for, then what the session showed: "
        "the affect read, whether it needs a person, the sentence the learner wrote or said that "
        "showed it, the subject) and `basis` "
        "(`tags`: ranked by the library's tags; `learnt`: ordered by the head this school's "
        "verdicts taught). A rank, never a probability.",
    )
    tutoring_library = serializers.PrimaryKeyRelatedField(
        read_only=True,
        help_text="The version of the organization's intervention library the suggestions came "
        "from (GET /api/v1/library-versions/{id}/).",
    )
    left_out = left_out_field()
    contributions = serializers.DictField(
        child=serializers.DictField(child=serializers.FloatField()),
        read_only=True,
        help_text="Per answer (each finding, and `emotion` for the affect chosen), each input's "
        "Shapley value: how much it moved that answer's probability (positive raised it). The "
        "values of an answer add up to its probability with every input minus its probability "
        "with none.",
    )
    needs_person = serializers.DictField(
        child=serializers.DictField(child=serializers.CharField()),
        read_only=True,
        help_text="Per task (diagnosis, emotion) that a person must judge: `reason` "
        "(evidence_missing: the case lacks an input the task needs; unlike_training: an input is "
        "of a kind the model was not trained on, or the case is far from its training cases; "
        "low_confidence: the model is less sure than the threshold, the model's own or the "
        "organization's) and `detail`, "
        "a sentence. A task not listed answered; `abstain` is true when any is listed.",
    )

    class Meta:
        model = AnalysisResult
        fields = [
            "id",
            "job",
            "model_version",
            "findings",
            "diagnosis",
            "emotion_label",
            "emotion",
            "tutoring",
            "tutoring_library",
            "modalities_used",
            "left_out",
            "contributions",
            "uncertainty",
            "abstain",
            "needs_person",
            "rationale",
            "rationales",
            "explanation",
            "created_at",
        ]
        read_only_fields = fields


class FeedbackSerializer(serializers.ModelSerializer):
    diagnosis = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, allow_null=True, max_length=50
    )

    class Meta:
        model = Feedback
        fields = ["id", "result", "kind", "diagnosis", "emotion_label", "intervention", "comment"]
        read_only_fields = ["id", "result"]


class ModelVersionSerializer(serializers.ModelSerializer):
    promoted_by = serializers.CharField(
        source="promoted_by.username", default=None, allow_null=True, read_only=True
    )

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "serves",
            "status",
            "metrics",
            "trained_on_synthetic_data",
            "created_at",
            "promoted_at",
            "promoted_by",
        ]
        read_only_fields = fields


SUBSCRIBABLE = [event for event in Event if event != Event.PING]


class WebhookSubscriptionSerializer(_InOneOrganizationSerializer):
    noun = "a subscription"

    events = serializers.ListField(
        child=serializers.ChoiceField(choices=[(e.value, e.label) for e in SUBSCRIBABLE]),
        min_length=1,
        max_length=len(SUBSCRIBABLE),
    )

    class Meta:
        model = WebhookSubscription
        fields = ["id", "organization", "url", "events", "description", "is_active", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_events(self, events: list[str]) -> list[str]:
        return sorted(set(events))


class WebhookSubscriptionWithSecretSerializer(WebhookSubscriptionSerializer):
    """Answers a create or a secret rotation: the only times the signing secret is shown."""

    secret = serializers.CharField(read_only=True)

    class Meta(WebhookSubscriptionSerializer.Meta):
        fields = [*WebhookSubscriptionSerializer.Meta.fields, "secret"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "subscription",
            "event",
            "payload",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "delivered_at",
        ]
        read_only_fields = fields


class ReportRequestSerializer(serializers.Serializer):
    period_start = serializers.DateField(
        required=False, allow_null=True, help_text="First day covered; omit for all history."
    )
    period_end = serializers.DateField(required=False, help_text="Last day covered; default today.")

    def validate(self, attrs: dict) -> dict:
        start, end = attrs.get("period_start"), attrs.get("period_end")
        if start and end and start > end:
            raise serializers.ValidationError({"period_start": "the period starts after it ends"})
        return attrs


class ReportSerializer(serializers.ModelSerializer):
    patient = subject_id_field(CLINIC)
    student = subject_id_field(SCHOOL)
    model_versions = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    download = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = [
            "id",
            "kind",
            "organization",
            "patient",
            "student",
            "cohort",
            "period_start",
            "period_end",
            "status",
            "error_message",
            "pages",
            "size_bytes",
            "model_versions",
            "download",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_download(self, report: Report) -> str | None:
        """Where the PDF is, once it is ready."""
        if report.status != ReportStatus.READY:
            return None
        return self.context["request"].build_absolute_uri(
            reverse("api:report-download", kwargs={"pk": report.pk})
        )


class InterventionSerializer(serializers.Serializer):
    """One intervention of a library; the service checks it again, with the affects the
    school's model estimates."""

    id = serializers.RegexField(
        library.ID_PATTERN.pattern, max_length=64, help_text="e.g. worked-example"
    )
    title = serializers.CharField(max_length=library.TITLE_LENGTH, validators=[printable_name])
    description = serializers.CharField(
        max_length=library.DESCRIPTION_LENGTH,
        required=False,
        allow_blank=True,
        validators=[printable_name],
    )
    affects = serializers.ListField(
        child=serializers.CharField(max_length=library.SUBJECT_LENGTH, validators=[printable_name]),
        required=False,
        max_length=20,
        help_text="The affects it is for, among those the school's model estimates; [] for any.",
    )
    subjects = serializers.ListField(
        child=serializers.CharField(max_length=library.SUBJECT_LENGTH, validators=[printable_name]),
        required=False,
        max_length=50,
        help_text="The subjects it is for; [] for any.",
    )
    grades = serializers.ListField(
        child=serializers.IntegerField(
            min_value=library.LOWEST_GRADE, max_value=library.HIGHEST_GRADE
        ),
        required=False,
        min_length=2,
        max_length=2,
        help_text="[lowest, highest] grade it suits; left out for any.",
    )


class LibraryVersionSerializer(serializers.ModelSerializer):
    """A version of a school's intervention library. A new one is written by sending the whole
    library: `organization` (a school) and its `interventions`."""

    organization = VisibleRelatedField(Organization)
    interventions = serializers.ListField(
        child=InterventionSerializer(), min_length=1, max_length=library.MOST_INTERVENTIONS
    )
    created_by = serializers.CharField(
        source="created_by.username", default=None, allow_null=True, read_only=True
    )

    class Meta:
        model = LibraryVersion
        fields = [
            "id",
            "organization",
            "number",
            "interventions",
            "change",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["id", "number", "change", "created_by", "created_at"]

    def validate_organization(self, organization: Organization) -> Organization:
        if not kind_of(organization).suggests_tutoring:
            kind = organization.get_kind_display().lower()
            raise serializers.ValidationError(
                f"{organization.name} is a {kind}: {library.ONLY_SCHOOLS}"
            )
        return organization
