"""What differs between a clinic and a school, in one place.

A clinic keeps patients and their encounters; a school keeps students and their learning
sessions. Everything else — uploads, analyses, reports, privacy requests, pages, the API — is
the same for both, and asks this module for the kind of a record (`kind_of`) and what that kind
calls things, instead of asking which model it holds. Going from any record to its visit
(`visit_of`) or its person (`subject_of`) is done here too: media and jobs name their visit by
one key (a VisitKey), reports and latest analyses their person by one (a SubjectKey), and this
module reads which visit or person a key names. What each kind of organization may analyse is
its policy (tessera.accounts.policy), not a difference of records.

This is the only module that tells the kinds apart by their models.
"""

import re
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
    SubjectKey,
    VisitKey,
)

Subject = Patient | Student
Visit = Encounter | LearningSession


@dataclass(frozen=True)
class RecordKind:
    subject_model: type[Model]  # its ORGANIZATION_KIND says which organizations keep it
    visit_model: type[Model]
    # The foreign key to the person, on a visit and on a SubjectKey.
    subject_field: str
    # The foreign key to the visit, on a VisitKey.
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
    # The person's grade as a number, where their kind has one and it names one ("Year 7": 7),
    # which the tutoring suggestions fit.
    level: Callable[[Model], int | None]

    @property
    def suggests_tutoring(self) -> bool:
        """Whether its visits get tutoring suggestions, from the organization's library."""
        return self.core_analysis == Analysis.TUTORING

    @property
    def organization_kind(self) -> OrganizationKind:
        return self.subject_model.ORGANIZATION_KIND

    @property
    def subject_noun(self) -> str:
        return self.subject_field

    @property
    def to_visit(self) -> str:
        """The lookup path from a media asset or a job to its visit."""
        return f"visit_key__{self.visit_field}"

    @property
    def from_visit(self) -> str:
        """The lookup path from a media asset or a job to its person."""
        return f"{self.to_visit}__{self.subject_field}"

    @property
    def from_result(self) -> str:
        """The lookup path from a result to its person."""
        return f"job__{self.from_visit}"

    @property
    def to_subject(self) -> str:
        """The lookup path from a report or a latest analysis to its person."""
        return f"subject_key__{self.subject_field}"

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
    level=lambda patient: None,
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
    level=lambda student: _number_in(student.grade),
)
KINDS = (CLINIC, SCHOOL)

# What select_related() follows from a media asset or a job to load its visit (so `visit_of`
# reads no row), or its person too (`subject_of`).
TO_VISITS = tuple(kind.to_visit for kind in KINDS)
TO_PEOPLE = tuple(kind.from_visit for kind in KINDS)
# ... and from a report or a latest analysis to load its person.
TO_SUBJECTS = tuple(kind.to_subject for kind in KINDS)

_BY_MODEL = {kind.subject_model: kind for kind in KINDS} | {
    kind.visit_model: kind for kind in KINDS
}
_BY_ORGANIZATION_KIND = {kind.organization_kind: kind for kind in KINDS}
_BY_SLUG = {kind.visit_slug: kind for kind in KINDS}


def kind_of(record: Model) -> RecordKind:
    """The kind of an organization, a person, a visit, a key, or a row that names a visit by its
    key (a media asset, a job) or a person by theirs (a report, a latest analysis)."""
    if type(record) in _BY_MODEL:
        return _BY_MODEL[type(record)]
    if isinstance(record, Organization):
        return _BY_ORGANIZATION_KIND[record.kind]
    if isinstance(record, VisitKey):
        return next(kind for kind in KINDS if getattr(record, f"{kind.visit_field}_id"))
    if isinstance(record, SubjectKey):
        return next(kind for kind in KINDS if getattr(record, f"{kind.subject_field}_id"))
    if getattr(record, "visit_key_id", None) is not None:
        return kind_of(record.visit_key)
    if getattr(record, "subject_key_id", None) is not None:
        return kind_of(record.subject_key)
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
    return getattr(row.visit_key, kind_of(row).visit_field)


def subject_of(record: Model) -> Subject:
    """The person of a visit, a media asset, a job, a report or a latest analysis (a person is
    their own)."""
    kind = kind_of(record)
    if type(record) is kind.subject_model:
        return record
    if type(record) is kind.visit_model:
        return getattr(record, kind.subject_field)
    if getattr(record, "subject_key_id", None) is not None:
        return getattr(record.subject_key, kind.subject_field)
    return getattr(visit_of(record), kind.subject_field)


def visit_id_of(row: Model) -> int:
    """The id of the visit of a media asset or a job, without reading the visit."""
    return getattr(row.visit_key, f"{kind_of(row).visit_field}_id")


def visit_ids(row: Model) -> dict[str, int | None]:
    """The id of a media asset's or a job's visit under each kind's name, the others None
    ({"encounter": 12, "learning_session": None}): how the API and the webhooks name it."""
    return {kind.visit_field: getattr(row.visit_key, f"{kind.visit_field}_id") for kind in KINDS}


def subject_id_of(row: Model) -> int:
    """The id of the person a report or a latest analysis is about, without reading them."""
    return getattr(row.subject_key, f"{kind_of(row).subject_field}_id")


def topic_of(visit: Visit) -> str | None:
    return kind_of(visit).topic(visit)


def level_of(subject: Subject) -> int | None:
    return kind_of(subject).level(subject)


def _number_in(text: str) -> int | None:
    found = re.search(r"\d+", text)
    return int(found.group()) if found else None


def visit_fields(visit: Visit) -> dict[str, VisitKey]:
    """The key that attaches a media asset or a job to `visit`, for create()."""
    return {"visit_key": visit.visit_key}


def subject_fields(subject: Subject) -> dict[str, SubjectKey]:
    """The key that makes a report or a latest analysis about `subject`, for create() or a
    lookup."""
    return {"subject_key": subject.subject_key}
