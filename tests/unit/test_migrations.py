"""The models and their migrations agree, and Django's system checks pass."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tessera.jobs.models import AnalysisJob, AnalysisResult, LatestAnalysis
from tessera.records.kinds import kind_for, subject_of, visit_of
from tessera.records.models import Encounter, LearningSession, MediaAsset, Patient, Student
from tessera.reports.models import Report
from tests.unit.conftest import WHEN


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration():
    try:
        call_command("makemigrations", "--check", "--dry-run", verbosity=0)
    except SystemExit as missing:
        pytest.fail(f"makemigrations --check found changes without a migration ({missing})")


def test_system_checks_pass():
    call_command("check", fail_level="WARNING")


# The schema before visits and people had keys (records 0004, jobs 0009, reports 0002): media
# and jobs held an `encounter` or a `learning_session`, reports and latest analyses a `patient`
# or a `student`.
BEFORE_KEYS = {
    "records": "0003_printable_names",
    "jobs": "0008_unlike_training_and_rationales_from_evidence",
    "reports": "0001_initial",
}


def _migrate(targets: list[tuple[str, str]]):
    """Migrate to `targets`, and return the models as they were there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


def _seed_the_old_way(apps) -> dict:
    """A clinic's and a school's person, visit, file, job, result, report and latest analysis,
    written with the models of BEFORE_KEYS; returns the ids that each row must keep."""
    model = apps.get_model
    version = model("jobs", "ModelVersion").objects.create(
        name="old", serves="clinic", bundle_path="old"
    )
    seeded = {}
    for kind, person_field, visit_field, identifier, media_kind in (
        ("clinic", "patient", "encounter", "mrn", "clinical_note"),
        ("school", "student", "learning_session", "student_number", "learner_text"),
    ):
        record_kind = kind_for(kind)
        organization = model("accounts", "Organization").objects.create(
            name=kind, slug=kind, kind=kind, jurisdiction="EU"
        )
        # The school's last person and visit, which the rows below name, share no id with the
        # clinic's: a row that kept the wrong kind's id would point at nothing.
        for number in range(3 if kind == "school" else 1):
            person = model("records", record_kind.subject_model.__name__).objects.create(
                organization=organization, full_name="Old Record", **{identifier: str(number)}
            )
            visit = model("records", record_kind.visit_model.__name__).objects.create(
                **{person_field: person, "occurred_at": WHEN},
                **({"subject_area": "maths"} if kind == "school" else {}),
            )
        asset = model("records", "MediaAsset").objects.create(
            organization=organization,
            **{visit_field: visit},
            kind=media_kind,
            sha256="0" * 64,
            size_bytes=1,
            content_type="text/plain",
            storage_path="x",
        )
        job = model("jobs", "AnalysisJob").objects.create(
            organization=organization, **{visit_field: visit}, task="all", model_version=version
        )
        job.media.set([asset])
        result = model("jobs", "AnalysisResult").objects.create(
            job=job,
            organization=organization,
            model_version=version,
            uncertainty=0.1,
            abstain=False,
        )
        report = model("reports", "Report").objects.create(
            organization=organization,
            kind=person_field,
            **{person_field: person},
            period_end=WHEN.date(),
        )
        cohort_report = model("reports", "Report").objects.create(
            organization=organization, kind="cohort", period_end=WHEN.date()
        )
        latest = model("jobs", "LatestAnalysis").objects.create(
            organization=organization, **{person_field: person}, job=job, result=result
        )
        seeded[kind] = {
            "person": person.pk,
            "visit": visit.pk,
            "asset": asset.pk,
            "job": job.pk,
            "result": result.pk,
            "report": report.pk,
            "cohort_report": cohort_report.pk,
            "latest": latest.pk,
        }
    return seeded


@pytest.mark.django_db(transaction=True)
def test_the_key_migrations_keep_every_rows_visit_and_person_both_ways():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    before = [(app, BEFORE_KEYS.get(app, name)) for app, name in latest]
    try:
        seeded = _seed_the_old_way(_migrate(before))
        _migrate(latest)
        for kind, ids in seeded.items():
            record_kind = kind_for(kind)
            visit = record_kind.visit_model.objects.get(pk=ids["visit"])
            person = record_kind.subject_model.objects.get(pk=ids["person"])
            assert visit_of(MediaAsset.objects.get(pk=ids["asset"])) == visit
            assert visit_of(AnalysisJob.objects.get(pk=ids["job"])) == visit
            assert visit_of(AnalysisResult.objects.get(pk=ids["result"]).job) == visit
            assert subject_of(Report.objects.get(pk=ids["report"])) == person
            assert Report.objects.get(pk=ids["cohort_report"]).subject_key is None
            assert subject_of(LatestAnalysis.objects.get(pk=ids["latest"])) == person
        people = [*Patient.objects.all(), *Student.objects.all()]
        visits = [*Encounter.objects.all(), *LearningSession.objects.all()]
        assert all(person.subject_key for person in people)
        assert all(visit.visit_key for visit in visits)

        old = _migrate(before)  # and back: the pairs of keys again, as they were
        for kind, ids in seeded.items():
            visit_field = kind_for(kind).visit_field
            subject_field = kind_for(kind).subject_field
            for app, model_name, pk in (
                ("records", "MediaAsset", ids["asset"]),
                ("jobs", "AnalysisJob", ids["job"]),
            ):
                row = old.get_model(app, model_name).objects.get(pk=pk)
                assert getattr(row, f"{visit_field}_id") == ids["visit"]
            for app, model_name, pk in (
                ("reports", "Report", ids["report"]),
                ("jobs", "LatestAnalysis", ids["latest"]),
            ):
                row = old.get_model(app, model_name).objects.get(pk=pk)
                assert getattr(row, f"{subject_field}_id") == ids["person"]
    finally:
        _migrate(latest)
