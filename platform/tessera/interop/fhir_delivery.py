"""A result to its organization's FHIR server (interop.deliveries calls it): a transaction Bundle
(tessera.fhir) of the patient and the DiagnosticReport in its current status, whose
presentedForm is the patient's PDF report of the result's day. The PDF is rendered once per
delivery (a report like any other, listed with the patient's), then sent with every attempt.

A late attempt sends the report's status as it is then, not as it was when queued, so an
older status never overwrites a newer one at the EHR."""

import json

from django.utils import timezone

from tessera.fhir import FHIR_JSON, presented_form, transaction_bundle
from tessera.interop.outbound_http import outgoing_authorization, post
from tessera.jobs.models import ResultDelivery
from tessera.records.kinds import subject_of
from tessera.records.storage import StoredContentCorrupted
from tessera.refusals import RefusalCode, Refused
from tessera.reports.models import Report, ReportStatus
from tessera.reports.selectors import open_report


def send_to_fhir_server(delivery: ResultDelivery) -> tuple[list[str], str]:
    """(where the server put each resource, "") or ([], why it did not take the Bundle)."""
    report = delivery.report or _request_pdf(delivery)
    if report.status == ReportStatus.FAILED:
        raise Refused(
            f"the PDF report could not be rendered: {report.error_message}",
            code=RefusalCode.NO_REPORT,
        )
    if report.status != ReportStatus.READY:
        return [], "the PDF report is still being rendered"
    try:
        with open_report(report) as stored:
            pdf = presented_form(
                title=report.filename, created=report.finished_at, pdf=stored.read()
            )
    except StoredContentCorrupted as error:
        raise Refused(
            "the PDF report's file is missing or damaged", code=RefusalCode.NO_REPORT
        ) from error
    bundle = transaction_bundle(delivery.result, presented=[pdf])
    url = delivery.result.organization.fhir_server_url.rstrip("/")
    answer = post(
        url,
        body=bundle.model_dump_json(exclude_none=True).encode(),
        content_type=FHIR_JSON,
        accept=FHIR_JSON,
        authorization=outgoing_authorization(delivery.result.organization, "fhir"),
    )
    if answer.status is None:
        return [], f"the FHIR server ({url}) could not be reached: {answer.unreachable}"
    if answer.status != 200:
        return [], f"the FHIR server ({url}) refused the Bundle: HTTP {answer.status}" + (
            f" ({said})" if (said := _diagnostics(answer.body)) else ""
        )
    return _locations(answer.body), ""


def _request_pdf(delivery: ResultDelivery) -> Report:
    """The patient's report of the result's day, rendered here and now (the reports queue
    finds it taken, or renders it first)."""
    from tessera.reports.services import render_report, request_report  # ReportLab: workers

    result = delivery.result
    day = timezone.localdate(result.created_at)
    report = request_report(
        organization=result.organization,
        requested_by=None,
        subject=subject_of(result.job),
        period_start=day,
        period_end=day,
    )
    ResultDelivery.objects.filter(pk=delivery.pk).update(report=report)
    render_report(report_id=report.pk)
    report.refresh_from_db()
    return report


def _locations(body: bytes) -> list[str]:
    """Where a transaction-response Bundle says each entry went ("DiagnosticReport/12/…")."""
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        return []
    entries = answer.get("entry", []) if isinstance(answer, dict) else []
    return [
        str(entry["response"].get("location", entry["response"].get("status", "")))
        for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("response"), dict)
    ]


def _diagnostics(body: bytes) -> str:
    """What an OperationOutcome says went wrong, shortened."""
    try:
        outcome = json.loads(body or b"{}")
    except ValueError:
        return ""
    issues = outcome.get("issue", []) if isinstance(outcome, dict) else []
    said = "; ".join(
        str(issue.get("diagnostics") or issue.get("code", ""))
        for issue in issues
        if isinstance(issue, dict)
    )
    return said[:300]
