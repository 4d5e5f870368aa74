from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from tessera.audit.models import AuditEvent
from tessera.audit.services import audited_models
from tessera.dashboards.selectors import PatientStatus
from tessera.records.models import MediaKind
from tessera.text import printable_name

# What each upload form accepts, for the browser's file picker and the hint under the field;
# the server checks again (records.uploads), whatever the browser let through.
UPLOAD_ACCEPT = {
    MediaKind.DICOM: ".dcm,.dicom,application/dicom,.zip,application/zip",
    MediaKind.CLINICAL_NOTE: ".txt,.md,text/plain",
    MediaKind.LEARNER_TEXT: ".txt,.md,text/plain",
    MediaKind.SPEECH: "audio/*,.wav,.flac,.ogg,.mp3",
    MediaKind.LEARNER_AUDIO: "audio/*,.wav,.flac,.ogg,.mp3",
}
UPLOAD_FORMATS = {
    MediaKind.DICOM: "a DICOM file (.dcm), or a zip of a series",
    MediaKind.CLINICAL_NOTE: "plain text (.txt), UTF-8",
    MediaKind.LEARNER_TEXT: "plain text (.txt), UTF-8",
    MediaKind.SPEECH: "WAV, FLAC, OGG or MP3",
    MediaKind.LEARNER_AUDIO: "WAV, FLAC, OGG or MP3",
}


def upload_limit(kind: str) -> int:
    if kind in (MediaKind.CLINICAL_NOTE, MediaKind.LEARNER_TEXT):
        return min(settings.TESSERA_MAX_UPLOAD_BYTES, settings.TESSERA_MAX_TEXT_BYTES)
    return settings.TESSERA_MAX_UPLOAD_BYTES


class UploadForm(forms.Form):
    """One media kind's upload; the file itself is judged by `records.services.add_media`."""

    file = forms.FileField(error_messages={"required": "Choose a file to upload."})

    def __init__(self, *args, kind: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kind = MediaKind(kind)
        self.max_bytes = upload_limit(kind)
        self.fields["file"].label = self.kind.label
        self.fields[
            "file"
        ].help_text = f"{UPLOAD_FORMATS[self.kind]}, up to {filesizeformat(self.max_bytes)}"
        self.fields["file"].widget.attrs.update(
            {"accept": UPLOAD_ACCEPT[self.kind], "data-max-bytes": self.max_bytes}
        )


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"


class EncounterForm(forms.Form):
    occurred_at = forms.DateTimeField(
        label="When", widget=DateTimeInput(format="%Y-%m-%dT%H:%M"), initial=timezone.localtime
    )
    reason = forms.CharField(
        label="Reason for the visit", max_length=200, required=False, validators=[printable_name]
    )


class LearningSessionForm(forms.Form):
    occurred_at = forms.DateTimeField(
        label="When", widget=DateTimeInput(format="%Y-%m-%dT%H:%M"), initial=timezone.localtime
    )
    subject_area = forms.CharField(label="Subject", max_length=80, validators=[printable_name])
    title = forms.CharField(
        label="Title", max_length=200, required=False, validators=[printable_name]
    )


class PatientFilterForm(forms.Form):
    cohort = forms.TypedChoiceField(label="Ward", coerce=int, required=False, empty_value=None)
    status = forms.ChoiceField(label="Status", choices=PatientStatus.CHOICES, required=False)

    def __init__(self, *args, cohorts, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["cohort"].choices = [("", "All wards")] + [(c.pk, c.name) for c in cohorts]


class CorrectionForm(forms.Form):
    """What the professional says is right instead: findings and/or the affect label."""

    findings = forms.MultipleChoiceField(
        label="Findings", required=False, widget=forms.CheckboxSelectMultiple
    )
    affect = forms.ChoiceField(label="Affect", required=False)

    def __init__(self, *args, findings: list[str], affects: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["findings"].choices = [(label, label.replace("_", " ")) for label in findings]
        self.fields["affect"].choices = [("", "(unchanged)")] + [
            (label, label.replace("_", " ")) for label in affects
        ]
        if not findings:
            del self.fields["findings"]


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Token name",
        max_length=100,
        validators=[printable_name],
        help_text="Say where it is used, e.g. 'Ward 3 PACS bridge'.",
    )


class DateInput(forms.DateInput):
    input_type = "date"


class ReportForm(forms.Form):
    """The period a report covers: from the first analysis, up to today, unless narrowed."""

    period_start = forms.DateField(
        label="From", required=False, widget=DateInput, help_text="Empty: from the first analysis."
    )
    period_end = forms.DateField(
        label="To", required=False, widget=DateInput, help_text="Empty: today."
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        start, end = cleaned.get("period_start"), cleaned.get("period_end")
        if start and start > (end or timezone.localdate()):
            raise forms.ValidationError("The period starts after it ends.")
        return cleaned


class CohortReportForm(ReportForm):
    """A report of one ward or class, or of the whole organization."""

    cohort = forms.TypedChoiceField(label="Of", coerce=int, required=False, empty_value=None)

    def __init__(self, *args, cohorts, whole: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["cohort"].choices = [("", whole)] + [(c.pk, c.name) for c in cohorts]
        self.order_fields(["cohort", "period_start", "period_end"])


class ScheduleForm(forms.Form):
    cohort = forms.TypedChoiceField(label="Of", coerce=int, required=False, empty_value=None)

    def __init__(self, *args, cohorts, whole: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["cohort"].choices = [("", whole)] + [(c.pk, c.name) for c in cohorts]


class AuditFilterForm(forms.Form):
    """Narrows the access log; every field optional, dates inclusive."""

    actor = forms.CharField(label="User", required=False, max_length=150)
    action = forms.ChoiceField(
        required=False, choices=[("", "Any action"), *AuditEvent.Action.choices]
    )
    object_type = forms.ChoiceField(
        label="Record",
        required=False,
        choices=lambda: (
            [("", "Any record")]
            + [(name, name.replace("_", " ").capitalize()) for name in audited_models().values()]
        ),
    )
    subject = forms.RegexField(
        label="Person",
        required=False,
        regex=r"^(patient|student):\d+$",
        help_text="patient:12 or student:7 — one person's whole trail.",
        error_messages={"invalid": "Write patient:<id> or student:<id>."},
    )
    since = forms.DateField(label="From", required=False, widget=DateInput)
    until = forms.DateField(label="To", required=False, widget=DateInput)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("since") and data.get("until") and data["until"] < data["since"]:
            raise forms.ValidationError("The end date is before the start date.")
        return data


class InterventionForm(forms.Form):
    """One intervention of the school's library, added or edited; the whole entry is judged by
    `tutoring.services.parse_intervention`."""

    id = forms.SlugField(
        label="Id",
        max_length=64,
        help_text="Lower-case letters, digits and hyphens; an existing id edits that intervention.",
    )
    title = forms.CharField(label="Title", max_length=120)
    description = forms.CharField(
        label="What the teacher does",
        max_length=1000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    affects = forms.MultipleChoiceField(
        label="For learners who seem",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None: any affect.",
    )
    subjects = forms.CharField(
        label="Subjects",
        max_length=400,
        required=False,
        help_text="Separated by commas; empty: any subject.",
    )
    lowest_grade = forms.IntegerField(label="From grade", min_value=0, max_value=13, required=False)
    highest_grade = forms.IntegerField(label="To grade", min_value=0, max_value=13, required=False)

    def __init__(self, *args, affects: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["affects"].choices = [(a, a.replace("_", " ")) for a in affects]

    def clean(self) -> dict:
        data = super().clean()
        low, high = data.get("lowest_grade"), data.get("highest_grade")
        if (low is None) != (high is None):
            raise forms.ValidationError("Give both grades, or neither for any grade.")
        return data

    def entry(self) -> dict:
        """The intervention as the library writes it."""
        data = self.cleaned_data
        entry = {
            "id": data["id"],
            "title": data["title"],
            "description": data["description"],
            "affects": list(data["affects"]),
            "subjects": [s.strip() for s in data["subjects"].split(",") if s.strip()],
        }
        if data.get("lowest_grade") is not None:
            entry["grades"] = [data["lowest_grade"], data["highest_grade"]]
        return entry

    @classmethod
    def initial_for(cls, intervention: dict) -> dict:
        grades = intervention.get("grades") or [None, None]
        return {
            **intervention,
            "subjects": ", ".join(intervention.get("subjects", [])),
            "lowest_grade": grades[0],
            "highest_grade": grades[1],
        }


class LibraryImportForm(forms.Form):
    file = forms.FileField(
        label="Library (JSON)",
        error_messages={"required": "Choose a JSON file, as the export writes it."},
    )
