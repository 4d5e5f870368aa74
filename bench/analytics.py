"""The dashboards' queries at scale: seeds a throwaway PostgreSQL database (loopback) with
`--subjects` subjects (half patients of one clinic, half students of one school) and
`--results` analysis results spread over their visits and the last twelve weeks (1 % of them
confirmed or corrected), then times each query the pages run, through the same selectors and
analytics functions, and prints its median over `--repeats` runs against the 200 ms budget.

Bulk rows are written by PostgreSQL itself (INSERT … SELECT over generate_series): the ORM
would take longer to seed than the whole benchmark.

Usage: .venv/bin/python bench/analytics.py [--subjects 100000] [--results 1000000]
    [--repeats 5] [--server postgres://postgres@127.0.0.1:5432]
"""

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import date

from _common import ROOT, throwaway_database

BUDGET_MS = 200
CLINIC_AFFECTS = ["neutral", "anxious", "depressed_mood", "pain"]
SCHOOL_AFFECTS = ["engaged", "confused", "frustrated", "bored"]
COHORTS = 20

SUBJECTS = """
INSERT INTO records_{table} (organization_id, full_name, sex, cohort_id, pseudonym, created_at,
                             updated_at, {number}{extra_columns})
SELECT %(organization)s, '{word} ' || n, 'unknown', %(first_cohort)s + n %% {cohorts},
       gen_random_uuid(), now(), now(), '{word}-' || n{extra_values}
FROM generate_series(1, %(count)s) AS n
"""
VISITS = """
INSERT INTO records_{table} ({subject}_id, occurred_at, {columns}, created_at)
SELECT s.id, now() - random() * interval '84 days', {values}, now()
FROM records_{subject} s CROSS JOIN generate_series(1, %(per_subject)s)
WHERE s.organization_id = %(organization)s
"""
# Each person and visit has its key (records.models.KeyedRecord makes them one by one).
KEYS = """
INSERT INTO records_subjectkey ({subject}_id)
SELECT id FROM records_{subject} WHERE organization_id = %(organization)s;
INSERT INTO records_visitkey ({visit}_id)
SELECT v.id FROM records_{table} v JOIN records_{subject} s ON s.id = v.{subject}_id
WHERE s.organization_id = %(organization)s;
"""
JOBS = """
INSERT INTO jobs_analysisjob (id, organization_id, visit_key_id, task, status, stage, progress,
    attempts, max_attempts, model_version_id, error_code, error_message, worker, lease_owner,
    timings, created_at, updated_at, finished_at)
SELECT gen_random_uuid(), %(organization)s, k.id, 'all', 'succeeded', '', 100, 1, 3,
       %(version)s, '', '', '', '', '{{}}', v.occurred_at, v.occurred_at, v.occurred_at
FROM records_{table} v JOIN records_visitkey k ON k.{visit}_id = v.id
"""
SUGGESTION = """'[{"id": "concept-check", "title": "Check the concept", "score": 0.5}]'"""
RESULTS = """
INSERT INTO jobs_analysisresult (job_id, organization_id, model_version_id, diagnosis, findings,
    emotion,
    emotion_label, modalities_used, contributions, uncertainty, abstain, tutoring, rationale,
    explanation, urgency, created_at)
SELECT j.id, %(organization)s, j.model_version_id, {diagnosis}, '[]', '{{}}',
       (%(affects)s::text[])[1 + floor(random() * 4)::int], '["text"]', '{{"text": 1.0}}',
       random(), random() < 0.1, {tutoring}, '', '{{}}', {urgency}, j.created_at
FROM (SELECT id, model_version_id, created_at, random() AS p
      FROM jobs_analysisjob WHERE organization_id = %(organization)s) j
"""
FEEDBACK = """
INSERT INTO jobs_feedback (result_id, kind, emotion_label, intervention, comment, created_at)
SELECT r.id, CASE WHEN random() < 0.7 THEN 'confirm' ELSE 'correct' END,
       (%(affects)s::text[])[1 + floor(random() * 4)::int], '', '', now()
FROM jobs_analysisresult r WHERE random() < 0.01
"""


def seed(*, subjects: int, results: int) -> dict:
    from django.db import connection

    from tessera.accounts.services import create_organization
    from tessera.jobs.latest import rebuild_latest_analyses
    from tessera.jobs.models import ModelVersion
    from tessera.records.services import create_cohort

    clinic = create_organization(
        name="Bench Clinic", slug="bench-clinic", kind="clinic", jurisdiction="US"
    )
    school = create_organization(
        name="Bench School", slug="bench-school", kind="school", jurisdiction="US"
    )
    versions = {
        kind: ModelVersion.objects.create(
            name=f"bench-{kind}", serves=kind, bundle_path=f"bench-{kind}", status="active"
        )
        for kind in ("clinic", "school")
    }
    first_cohort = {}
    for organization in (clinic, school):
        made = [create_cohort(organization=organization, name=f"Group {n}") for n in range(COHORTS)]
        first_cohort[organization.kind] = made[0].pk
    half, per_subject = subjects // 2, max(1, results // subjects)
    plan = [
        (clinic, "patient", "encounter", "mrn", "", "", "reason", "''", CLINIC_AFFECTS),
        (
            school,
            "student",
            "learningsession",
            "student_number",
            ", grade",
            ", '7'",
            "subject_area, title",
            "'Mathematics', ''",
            SCHOOL_AFFECTS,
        ),
    ]
    with connection.cursor() as cursor:
        for (
            organization,
            subject,
            visit_table,
            number,
            extra_columns,
            extra_values,
            visit_columns,
            visit_values,
            affects,
        ) in plan:
            parameters = {
                "organization": organization.pk,
                "first_cohort": first_cohort[organization.kind],
                "count": half,
                "per_subject": per_subject,
                "version": versions[organization.kind].pk,
                "affects": affects,
            }
            cursor.execute(
                SUBJECTS.format(
                    table=subject,
                    number=number,
                    extra_columns=extra_columns,
                    word=subject.title(),
                    cohorts=COHORTS,
                    extra_values=extra_values,
                ),
                parameters,
            )
            cursor.execute(
                VISITS.format(
                    table=visit_table, subject=subject, columns=visit_columns, values=visit_values
                ),
                parameters,
            )
            visit_field = "encounter" if subject == "patient" else "learning_session"
            cursor.execute(
                KEYS.format(subject=subject, visit=visit_field, table=visit_table), parameters
            )
            cursor.execute(JOBS.format(visit=visit_field, table=visit_table), parameters)
            is_clinic = subject == "patient"
            cursor.execute(
                RESULTS.format(
                    diagnosis="jsonb_build_object('suspicious_mass', j.p)" if is_clinic else "'{}'",
                    urgency="j.p" if is_clinic else "0",
                    tutoring="'[]'" if is_clinic else SUGGESTION,
                ),
                parameters,
            )
            cursor.execute(FEEDBACK, parameters)
        cursor.execute("ANALYZE")
        cursor.execute("SELECT count(*) FROM jobs_analysisresult")
        (stored,) = cursor.fetchone()
    # the rows the job services keep as jobs finish; the bulk insert went around them
    for organization in (clinic, school):
        rebuild_latest_analyses(organization=organization)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"clinic": clinic, "school": school, "versions": versions, "results": stored}


def median_ms(query: Callable[[], object], repeats: int) -> float:
    query()  # warm the caches and the connection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        query()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def dashboard_queries(seeded: dict) -> dict[str, Callable[[], object]]:
    from django.core.paginator import Paginator

    from analytics.trends import mondays
    from tessera.accounts.models import Organization
    from tessera.dashboards import selectors
    from tessera.jobs.statistics import affect_agreement, affect_by_week
    from tessera.records.models import Patient

    clinic, school, versions = seeded["clinic"], seeded["school"], seeded["versions"]
    patient = Patient.objects.filter(organization=clinic).order_by("pk").first()

    def first_page(**filters):
        page = Paginator(selectors.clinic_patients(organization=clinic, **filters), 50)
        return lambda: (page.count, list(page.get_page(1)))

    return {
        "clinician: most urgent patients, page 1": first_page(),
        "clinician: … needing review": first_page(status="review"),
        "clinician: … of one ward": first_page(cohort=clinic.cohorts.first().pk),
        "clinician: running and failed jobs": lambda: selectors.job_counts(organization=clinic),
        "patient page: visits, jobs, results": lambda: [
            (visit, list(visit.visit_key.jobs.all()))
            for visit in selectors.visits_of(subject=patient)
        ],
        "teacher: affect per week (8 weeks)": lambda: affect_by_week(
            results=selectors.school_results(organization=school),
            labels=SCHOOL_AFFECTS,
            weeks=mondays(weeks=8, until=date.today()),
        ),
        "teacher: students needing attention": lambda: selectors.students_needing_attention(
            organization=school
        ),
        "teacher: latest suggestions": lambda: selectors.latest_suggestions(organization=school),
        "models: affect agreement (clinic)": lambda: affect_agreement(
            version=versions["clinic"],
            organizations=Organization.objects.filter(pk=clinic.pk),
            labels=CLINIC_AFFECTS,
        ),
    }


def report_timings(seeded: dict) -> list[tuple[str, float, int]]:
    """Render a four-week cohort report of the whole school and one patient's report, as the
    `reports` worker does (content gathered with aggregates, charts, PDF)."""
    from datetime import timedelta

    from tessera.records.models import Patient
    from tessera.reports.models import Report
    from tessera.reports.services import render_report

    today = date.today()
    patient = Patient.objects.filter(organization=seeded["clinic"]).order_by("pk").first()
    asked = {
        "report: whole school, last 4 weeks": {
            "organization": seeded["school"],
            "kind": "cohort",
            "period_start": today - timedelta(weeks=4),
        },
        "report: one patient, all history": {
            "organization": seeded["clinic"],
            "kind": "patient",
            "patient": patient,
        },
    }
    timings = []
    for name, fields in asked.items():
        report = Report.objects.create(period_end=today, **fields)
        start = time.perf_counter()
        rendered = render_report(report_id=report.pk)
        timings.append((name, time.perf_counter() - start, rendered.pages))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()

    with throwaway_database(args.server, prefix="tessera_analytics") as database:
        os.environ.update(
            DATABASE_URL=database,
            DJANGO_SETTINGS_MODULE="tessera.settings",
            TESSERA_VAR_DIR=os.environ.get("TESSERA_VAR_DIR", str(ROOT / "var" / "bench")),
        )
        import sys

        sys.path.insert(0, str(ROOT / "platform"))
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        start = time.perf_counter()
        seeded = seed(subjects=args.subjects, results=args.results)
        print(
            f"seeded {args.subjects:,} subjects and {seeded['results']:,} results "
            f"in {time.perf_counter() - start:.0f} s; median of {args.repeats} runs each:"
        )
        over = 0
        for name, query in dashboard_queries(seeded).items():
            ms = median_ms(query, args.repeats)
            over += ms > BUDGET_MS
            verdict = "ok" if ms <= BUDGET_MS else f"OVER the {BUDGET_MS} ms budget"
            print(f"  {name:<42} {ms:8.1f} ms  {verdict}")
        print(f"{over} of the dashboard queries over budget")
        for name, seconds, pages in report_timings(seeded):
            print(f"  {name:<42} {seconds * 1000:8.1f} ms  ({pages} pages)")
        from django.db import connections

        connections.close_all()


if __name__ == "__main__":
    main()
