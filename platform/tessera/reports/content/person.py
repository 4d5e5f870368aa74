"""What a patient's or a student's report says: their analyses in the period, what moved
each one, and the professionals' verdicts."""

from dataclasses import dataclass
from datetime import date

from django.utils import timezone

from analytics.trends import weekly_distribution, weeks_between
from tessera.jobs.models import AnalysisResult, Feedback
from tessera.records.kinds import CLINIC, SCHOOL, kind_of, visit_of
from tessera.records.models import Transcript
from tessera.records.selectors import readable_segments
from tessera.reports import charts
from tessera.reports.content.document import (
    MOST_ANALYSES_LISTED,
    MOST_EXPLAINED,
    Chart,
    ReportContent,
    Table,
    affect_chart,
    header,
    listed_note,
    monday_of,
    notice_for,
    percent,
    words,
)
from tessera.reports.content.queries import results_of, transcripts_of
from tessera.reports.models import Report

# A long recording's transcript is cut in the report; the page has all of it.
MOST_SAID_CHARACTERS = 1500


def _verdict(result: AnalysisResult) -> str:
    verdicts = list(result.feedback.all())
    if not verdicts:
        return "not reviewed"
    latest = verdicts[0]
    if latest.kind == Feedback.Kind.CORRECT:
        corrected = ", ".join(words(label) for label in latest.diagnosis or []) or words(
            latest.emotion_label
        )
        return f"corrected: {corrected or 'none'}"
    return latest.get_kind_display().lower()


@dataclass(frozen=True)
class Analysed:
    """One person's results in a report's period, oldest first."""

    results: list[AnalysisResult]
    start: date
    end: date


def subject_content(report: Report) -> ReportContent:
    subject = report.subject
    kind = kind_of(subject)
    results, start, end = results_of(subject, report=report)
    versions = sorted({r.model_version for r in results}, key=lambda v: v.created_at)
    identifier = f"{kind.identifier_abbreviation} {kind.identifier_of(subject)}"
    grade = getattr(subject, "grade", "")
    extra = f", grade {grade}" if grade else ""
    content = ReportContent(
        **header(
            report,
            title=f"{kind.subject_noun.capitalize()} report",
            about=f"{subject.full_name} ({identifier}{extra})",
            start=start,
            end=end,
        ),
        facts=[
            ("Analyses in the period", str(len(results))),
            (
                "Flagged for review (the model was unsure)",
                str(sum(result.abstain for result in results)),
            ),
            ("Reviewed by a professional", str(sum(bool(r.feedback.all()) for r in results))),
        ],
        model_versions=versions,
        notice=notice_for(versions),
    )
    SUBJECT_SECTIONS[kind](content, Analysed(results, start, end))
    transcripts = transcripts_of(subject, start=start, end=end)
    if transcripts:
        content.tables.append(_said(transcripts))
    content.explanations = [_explained(result) for result in results[-MOST_EXPLAINED:]]
    return content


def _said(transcripts: list[Transcript]) -> Table:
    """What was said in the person's recordings in the period, as the speech model heard it."""
    rows = []
    for transcript in transcripts:
        visit = visit_of(transcript.media)
        said = " ".join(segment.text for segment in readable_segments(transcript))
        if len(said) > MOST_SAID_CHARACTERS:
            said = f"{said[:MOST_SAID_CHARACTERS].rsplit(' ', 1)[0]} … (the rest in Tessera)"
        rows.append(
            [
                f"{timezone.localtime(visit.occurred_at):%d %b %Y}",
                kind_of(visit).visit_title(visit),
                said or "(cannot be read on this server)",
            ]
        )
    models = sorted({transcript.speech_model for transcript in transcripts})
    return Table(
        "What was said",
        ["Date", "Visit", "Transcript"],
        rows,
        note=f"Transcribed on Tessera's server by {', '.join(models)}; it may mishear words.",
        shares=(0.15, 0.2, 0.65),
    )


def _visit_name(result: AnalysisResult) -> str:
    visit = visit_of(result.job)
    return kind_of(visit).visit_title(visit)


def _patient_sections(content: ReportContent, analysed: Analysed) -> None:
    """Findings over time, and each analysis."""
    results = analysed.results
    labels = list(dict.fromkeys(label for r in results for label in r.diagnosis))
    if results and labels:
        content.charts.append(
            Chart(
                "Finding probabilities over time",
                charts.probabilities_over_time(
                    [r.created_at for r in results],
                    {
                        words(label): [r.diagnosis.get(label, 0.0) for r in results]
                        for label in labels
                    },
                    title="Finding probability at each analysis (dashed: 50%)",
                ),
            )
        )
    content.tables.append(
        Table(
            "Analyses",
            ["Date", "Visit", "Findings", "Affect", "Review", "Model", "Professional"],
            [
                [
                    f"{timezone.localtime(r.created_at):%d %b %Y}",
                    _visit_name(r),
                    ", ".join(
                        f"{words(label)} {percent(p)}"
                        for label, p in sorted(r.diagnosis.items(), key=lambda item: -item[1])
                    )
                    or "—",
                    words(r.emotion_label) or "—",
                    "needs a person" if r.abstain else "",
                    r.model_version.name,
                    _verdict(r),
                ]
                for r in results[-MOST_ANALYSES_LISTED:]
            ],
            note=listed_note(len(results)),
        )
    )


def _student_sections(content: ReportContent, analysed: Analysed) -> None:
    """Affect per week, and each analysis."""
    results = analysed.results
    labels = list(dict.fromkeys(label for r in results for label in r.emotion))
    weeks = weeks_between(analysed.start, analysed.end)[-26:]
    distribution = weekly_distribution(
        (
            (monday_of(timezone.localdate(r.created_at)), r.emotion_label, 1)
            for r in results
            if r.emotion_label
        ),
        labels=labels,
        weeks=weeks,
    )
    if results and labels:
        content.charts.append(affect_chart(distribution, labels))
    content.tables.append(
        Table(
            "Analyses",
            ["Date", "Session", "Affect", "Suggestion", "Review", "Model", "Professional"],
            [
                [
                    f"{timezone.localtime(r.created_at):%d %b %Y}",
                    _visit_name(r),
                    f"{words(r.emotion_label)} {percent(r.emotion.get(r.emotion_label))}"
                    if r.emotion_label
                    else "—",
                    r.tutoring[0]["title"] if r.tutoring else "—",
                    "needs a person" if r.abstain else "",
                    r.model_version.name,
                    _verdict(r),
                ]
                for r in results[-MOST_ANALYSES_LISTED:]
            ],
            note=listed_note(len(results)),
        )
    )


def _explained(result: AnalysisResult) -> tuple[str, str]:
    moved = "; ".join(
        f"{answer['answer'].replace('_', ' ')}: "
        + ", ".join(f"{item['input']} {percent(item['share'])}" for item in answer["inputs"])
        for answer in result.contributions_by_task
    )
    parts = [f"What moved each answer: {moved or 'not measured'}.", *result.left_out_notes]
    parts += [
        f"{'Findings' if task == 'diagnosis' else 'Affect'} need a person: {why['detail']}"
        for task, why in result.needs_person.items()
    ]
    parts += [
        f"Why the {'findings' if task == 'diagnosis' else 'affect'}, from the evidence: {sentence}"
        for task, sentence in result.rationales.items()
    ]
    if result.rationale:
        parts.append(f"Rationale (language model): {result.rationale}")
    if result.tutoring:
        parts.append(
            "Suggestions: "
            + " ".join(
                f"{item['rank']}. {item['title']} ({item['reason']})."
                + (f" {item['rationale']}" if item.get("rationale") else "")
                for item in result.tutoring[:3]
            )
        )
    return (
        f"{timezone.localtime(result.created_at):%d %b %Y, %H:%M}: {_visit_name(result)}",
        " ".join(parts),
    )


# What a report shows of a person beyond what every report shows.
SUBJECT_SECTIONS = {CLINIC: _patient_sections, SCHOOL: _student_sections}
