"""One core for clinic and school: only `tessera.records.kinds` tells a patient from a student
or an encounter from a learning session. Everything else asks it (`kind_of`, `visit_of`,
`subject_of`), so a branch written anywhere else is the start of a second platform."""

import re
from pathlib import Path

import pytest

from tessera.records.kinds import (
    CLINIC,
    KINDS,
    SCHOOL,
    kind_accepting,
    kind_of,
    subject_of,
    visit_of,
)
from tessera.records.models import MediaKind
from tessera.records.services import (
    add_media,
    create_encounter,
    create_learning_session,
    create_patient,
    create_student,
)
from tests.conftest import upload
from tests.unit.conftest import WHEN

REPO = Path(__file__).resolve().parents[2]
KINDS_MODULE = REPO / "platform" / "tessera" / "records" / "kinds.py"
# The models declare the kinds (which organizations keep them, which files a visit takes);
# migrations are history.
DECLARATIONS = {REPO / "platform" / "tessera" / "records" / "models.py"}

KNOWN_FORMS = re.compile(
    r"isinstance\([^)]*\b(Patient|Student|Encounter|LearningSession)\b"
    r"|\bis_(patient|student|encounter|session|clinic|school)\b"
    r"|\.(encounter|learning_session|patient|student)\s+or\b"
    r"|\.get\(\"(encounter|learning_session|patient|student)\"\)\s+or\b"
    r"|\b(encounter|learning_session|patient|student)_id\s+else\b"
    r"|\.kind\s*[!=]=\s*(Organization\.Kind|OrganizationKind)\.(CLINIC|SCHOOL)"
    r"|\.kind\s*[!=]=\s*[\"'](clinic|school)[\"']"
    r"|\b(ENCOUNTER|LEARNING)_MEDIA\b"
)


def _code() -> list[Path]:
    platform = REPO / "platform" / "tessera"
    files = [*platform.rglob("*.py"), *(REPO / "templates").rglob("*.html")]
    return [
        path
        for path in files
        if "migrations" not in path.parts and path != KINDS_MODULE and path not in DECLARATIONS
    ]


@pytest.mark.parametrize(
    "branch",
    [
        "if isinstance(visit, Encounter):",
        "kind = 'a' if isinstance(subject, (Patient, Student)) else 'b'",
        '"is_patient": True,',
        "{% if is_patient %}MRN{% endif %}",
        "visit = job.encounter or job.learning_session",
        'attached_to = data.get("encounter") or data.get("learning_session")',
        "visit.patient if result.job.encounter_id else visit.student",
        "if organization.kind == OrganizationKind.CLINIC:",
        "if current.organization.kind != Organization.Kind.SCHOOL:",
        '{% if organization.kind == "clinic" %}ward{% endif %}',
        "kinds = ENCOUNTER_MEDIA if encounter else LEARNING_MEDIA",
    ],
)
def test_the_search_finds_each_known_form_of_the_branch(branch):
    assert KNOWN_FORMS.search(branch)


def test_no_code_outside_the_kinds_module_tells_a_patient_from_a_student():
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in _code()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if KNOWN_FORMS.search(line)
    ]
    assert found == []


def test_each_kind_names_its_own_models_pages_and_files(clinic, school):
    assert (kind_of(clinic), kind_of(school)) == (CLINIC, SCHOOL)
    assert {kind.organization_kind for kind in KINDS} == {clinic.kind, school.kind}
    for kind in KINDS:
        assert all(kind_accepting(media) is kind for media in kind.media_kinds)
    assert {media for kind in KINDS for media in kind.media_kinds} == set(MediaKind)


def test_every_record_finds_its_visit_and_its_person(clinic, school):
    patient = create_patient(organization=clinic, mrn="K-1", full_name="Kind Patient")
    student = create_student(organization=school, student_number="K-2", full_name="Kind Student")
    visits = (
        (create_encounter(patient=patient, occurred_at=WHEN), MediaKind.CLINICAL_NOTE, patient),
        (
            create_learning_session(student=student, occurred_at=WHEN, subject_area="Art"),
            MediaKind.LEARNER_TEXT,
            student,
        ),
    )
    for visit, media_kind, person in visits:
        asset = add_media(attached_to=visit, kind=media_kind, file=upload(b"calm and well"))
        assert kind_of(visit) is kind_of(person) is kind_of(asset) is kind_of(person.organization)
        assert (subject_of(visit), subject_of(asset), subject_of(person)) == (person,) * 3
        assert visit_of(asset) == visit
