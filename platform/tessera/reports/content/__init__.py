"""What a report says, gathered from the database (`queries`; aggregates for cohorts: a
ward's report reads counts, not rows) and written (`document`) as a ReportContent that
`reports.pdf` lays out: a person's (`person`) or a cohort's (`cohort`)."""

from tessera.reports.content.cohort import cohort_content
from tessera.reports.content.document import ReportContent
from tessera.reports.content.person import subject_content
from tessera.reports.models import Report, ReportKind

__all__ = ["ReportContent", "report_content"]


def report_content(report: Report) -> ReportContent:
    if report.kind == ReportKind.COHORT:
        return cohort_content(report)
    return subject_content(report)
