"""What differs between a clinic and a school, in one place.

A clinic keeps patients and their encounters; a school keeps students and their learning
sessions. Everything else — uploads, analyses, reports, privacy requests, pages, the API — is
the same for both, and asks this module for the kind of a record (`kind_of`) and what that kind
calls things, instead of asking which model it holds. Going from any record to its visit
(`visit_of`) or its person (`subject_of`) is done here too. What each kind of organization may
analyse is its policy (tessera.accounts.policy), not a difference of records.

This is the only module that tells the kinds apart by their models.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Model

from tessera.accounts.models import Organization
from tessera.accounts.policy import Analysis, OrganizationKind
from tessera.records.models import (
    ENCOUNTER_MEDIA,
    LEARNING_MEDIA,
    Encounter,
    LearningSession,
    MediaKind,
    Patient,
    Student,
)

Subject = Patient | Student
Visit = Encounter | LearningSession


@dataclass(frozen=True)
class RecordKind:
    subject_model: type[Model]  # its ORGANIZATION_KIND says which organizations keep it
    visit_model: type[Model]
    # The foreign key to the person, on a visit, a report and a latest analysis.
    subject_field: str
    # The foreign key to the visit, on a media asset and an analysis job.
    visit_field: str
    # A person's visits (the related name).
    visits: str
    visit_noun: str
    visit_nouns: str
    # A visit's name in page URLs (/visits/<slug>/<pk>/...).
    visit_slug: str
    # Where a kind of file goes, as an upload refusal says it.
    visit_described: str
    identifier_field: str
    identifier_noun: str
    # The identifier as the person's page writes it before the number.
    identifier_label: str
    # The identifier as the PDF report writes it before the number.
    identifier_abbreviation: str
    cohort_noun: str
    media_kinds: tuple[MediaKind, ...]
    # What a request for "everything" asks for besides the affect.
    core_analysis: Analysis
    # The URL names of the person's pages.
    subject_page: str
    new_visit_page: str
    report_page: str
    export_page: str
    erase_page: str
    visit_title: Callable[[Model], str]
    # What a visit was about, as the model reads it: a lesson's subject, which the tutoring
    # suggestions fit; nothing for an encounter.
    topic: Callable[[Model], str | None]

    @property
    def organization_kind(self) -> OrganizationKind:
        return self.subject_model.ORGANIZATION_KIND

    @property
    def subject_noun(self) -> str:
        return self.subject_field

    @property
    def from_visit(self) -> str:
        """The lookup path from a media asset or a job to its person."""
        return f"{self.visit_field}__{self.subject_field}"

    @property
    def from_result(self) -> str:
        """The lookup path from a result to its person."""
        return f"job__{self.from_visit}"

    def visits_of(self, subject: Model):
        """The person's visits (a related manager)."""
        return getattr(subject, self.visits)

    def identifier_of(self, subject: Model) -> str:
        return getattr(subject, self.identifier_field)


CLINIC = RecordKind(
    subject_model=Patient,
    visit_model=Encounter,
    subject_field="patient",
    visit_field="encounter",
    visits="encounters",
    visit_noun="encounter",
    visit_nouns="encounters",
    visit_slug="encounter",
    visit_described="a patient encounter",
    identifier_field="mrn",
    identifier_noun="MRN",
    identifier_label="MRN",
    identifier_abbreviation="MRN",
    cohort_noun="ward",
    media_kinds=ENCOUNTER_MEDIA,
    core_analysis=Analysis.DIAGNOSIS,
    subject_page="patient",
    new_visit_page="new_encounter",
    report_page="patient_report",
    export_page="patient_export",
    erase_page="patient_erase",
    visit_title=lambda encounter: encounter.reason or "encounter",
    topic=lambda encounter: None,
)
SCHOOL = RecordKind(
    subject_model=Student,
    visit_model=LearningSession,
    subject_field="student",
    visit_field="learning_session",
    visits="learning_sessions",
    visit_noun="learning session",
    visit_nouns="learning sessions",
    visit_slug="session",
    visit_described="a learning session",
    identifier_field="student_number",
    identifier_noun="student number",
    identifier_label="Student",
    identifier_abbreviation="student no.",
    cohort_noun="class",
    media_kinds=LEARNING_MEDIA,
    core_analysis=Analysis.TUTORING,
    subject_page="student",
    new_visit_page="new_session",
    report_page="student_report",
    export_page="student_export",
    erase_page="student_erase",
    visit_title=lambda session: (
        session.title or session.subject_area.replace("_", " ") or "session"
    ),
    topic=lambda session: session.subject_area,
)
KINDS = (CLINIC, SCHOOL)

_BY_MODEL = {kind.subject_model: kind for kind in KINDS} | {
    kind.visit_model: kind for kind in KINDS
}
_BY_ORGANIZATION_KIND = {kind.organization_kind: kind for kind in KINDS}
_BY_SLUG = {kind.visit_slug: kind for kind in KINDS}


def kind_of(record: Model) -> RecordKind:
    """The kind of an organization, a person, a visit, or a row that points at a visit (a
    media asset, a job) or at a person (a report, a latest analysis)."""
    if type(record) in _BY_MODEL:
        return _BY_MODEL[type(record)]
    if isinstance(record, Organization):
        return _BY_ORGANIZATION_KIND[record.kind]
    for kind in KINDS:
        for field in (kind.visit_field, kind.subject_field):
            if getattr(record, f"{field}_id", None) is not None:
                return kind
    raise ValueError(f"{record!r} is no record of a person")


def kind_for(organization_kind: str) -> RecordKind:
    return _BY_ORGANIZATION_KIND[OrganizationKind(organization_kind)]


def kind_with_slug(slug: str) -> RecordKind | None:
    """The kind whose visits page URLs name `slug` ("encounter", "session"), or None."""
    return _BY_SLUG.get(slug)


def kind_accepting(media_kind: str) -> RecordKind:
    """The kind of visit a kind of file is attached to."""
    return next(kind for kind in KINDS if MediaKind(media_kind) in kind.media_kinds)


def visit_of(row: Model) -> Visit:
    """The visit of a media asset or a job."""
    return getattr(row, kind_of(row).visit_field)


def subject_of(record: Model) -> Subject:
    """The person of a visit, a media asset, a job, a report or a latest analysis (a person is
    their own)."""
    kind = kind_of(record)
    if type(record) is kind.subject_model:
        return record
    if type(record) is kind.visit_model or getattr(record, f"{kind.subject_field}_id", None):
        return getattr(record, kind.subject_field)
    return getattr(visit_of(record), kind.subject_field)


def visit_id_of(row: Model) -> int:
    """The id of the visit of a media asset or a job, without reading it."""
    return getattr(row, f"{kind_of(row).visit_field}_id")


def subject_id_of(row: Model) -> int:
    """The id of the person a report or a latest analysis is about, without reading them."""
    return getattr(row, f"{kind_of(row).subject_field}_id")


def topic_of(visit: Visit) -> str | None:
    return kind_of(visit).topic(visit)


def visit_fields(visit: Visit) -> dict[str, Visit]:
    """The foreign key that attaches a media asset or a job to `visit`, for create()."""
    return {kind_of(visit).visit_field: visit}


def subject_fields(subject: Subject) -> dict[str, Subject]:
    """The foreign key that makes a report or a latest analysis about `subject`, for create()
    or a lookup."""
    return {kind_of(subject).subject_field: subject}
