"""Prometheus metrics at `/metrics`, for the IT team's scraper: the request metrics of
django-prometheus (this process's), and Tessera's own, counted from the database at each
scrape, so every web process answers the same for the whole installation, whichever hosts its
workers run on:
- `tessera_jobs{status}`: the backlog and the rest, by status (from the jobs table, not from
  the broker, whose queues also hold jobs already taken into a batch);
- `tessera_job_stage_seconds{stage}`: a histogram of each job's time in preprocessing and in
  inference (its `timings`, which the workers write);
- `tessera_batch_cases`: a histogram of the micro-batch each job was inferred in;
- `tessera_failed_jobs{code}`: failed jobs by error code;
- `tessera_failed_deliveries{destination}`: webhook, PACS and FHIR deliveries given up on;
- `tessera_report_render_seconds`: a histogram of the reports' render times.

Each full scan is one aggregate query; a scrape every 30 s or more is what it is made for.
Only a scraper with TESSERA_METRICS_TOKEN (a bearer token) or from TESSERA_METRICS_NETWORKS
may read them (probes.ProbeMiddleware asks `allowed`)."""

import hmac
import ipaddress
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, FloatField, Q, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.http import HttpRequest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from tessera.jobs.models import Activity, AnalysisJob, JobStatus, ResultDelivery
from tessera.reports.models import Report, ReportStatus
from tessera.webhooks.models import DeliveryStatus, WebhookDelivery

STAGES = (Activity.PREPROCESSING, Activity.INFERENCE)
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
RENDER_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def allowed(request: HttpRequest) -> bool | None:
    """True for the scraper's token or network, False for anyone else; None when the server
    has neither set (metrics are off)."""
    token, networks = settings.TESSERA_METRICS_TOKEN, settings.TESSERA_METRICS_NETWORKS
    if not token and not networks:
        return None
    presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token and presented and hmac.compare_digest(presented, token):
        return True
    try:  # the peer itself: a forwarded-for header is the client's to write
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(network) for network in networks)


class DatabaseCollector(Collector):
    def collect(self):
        yield self._jobs()
        yield self._stages()
        yield _histogram(
            "tessera_batch_cases",
            "Cases in the micro-batch each job was inferred in.",
            AnalysisJob.objects.filter(timings__has_key="batch_cases"),
            Cast(KT("timings__batch_cases"), FloatField()),
            BATCH_BUCKETS,
        )
        yield self._failures()
        yield self._deliveries()
        render = ExpressionWrapper(F("finished_at") - F("started_at"), DurationField())
        reports = Report.objects.filter(status=ReportStatus.READY, started_at__isnull=False)
        yield _histogram(
            "tessera_report_render_seconds",
            "Time to render each report that is ready.",
            reports,
            None,
            RENDER_BUCKETS,
            within=lambda seconds: Q(finished_at__lte=F("started_at") + timedelta(seconds=seconds)),
            total=Sum(render),
        )

    def _jobs(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily("tessera_jobs", "Analysis jobs by status.", labels=["status"])
        counts = dict(
            AnalysisJob.objects.order_by().values_list("status").annotate(count=Count("pk"))
        )
        for status in JobStatus:
            family.add_metric([status.value], counts.get(status.value, 0))
        return family

    def _stages(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "tessera_job_stage_seconds", "Each job's time in a stage.", labels=["stage"]
        )
        for stage in STAGES:
            rows = AnalysisJob.objects.filter(timings__has_key=str(stage))
            value = Cast(KT(f"timings__{stage}"), FloatField())
            buckets, total = _bucket_counts(rows.annotate(value=value), STAGE_BUCKETS)
            family.add_metric([str(stage)], buckets, sum_value=total)
        return family

    def _failures(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "tessera_failed_jobs", "Failed analysis jobs by error code.", labels=["code"]
        )
        failed = AnalysisJob.objects.filter(status=JobStatus.FAILED).order_by()
        for code, count in failed.values_list("error_code").annotate(count=Count("pk")):
            family.add_metric([code or "unknown"], count)
        return family

    def _deliveries(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "tessera_failed_deliveries",
            "Deliveries given up on, by destination.",
            labels=["destination"],
        )
        family.add_metric(
            ["webhook"], WebhookDelivery.objects.filter(status=DeliveryStatus.FAILED).count()
        )
        failed = ResultDelivery.objects.filter(status=ResultDelivery.Status.FAILED).order_by()
        counts = dict(failed.values_list("destination").annotate(count=Count("pk")))
        for destination in ResultDelivery.Destination:
            family.add_metric([destination.value], counts.get(destination.value, 0))
        return family


def _histogram(name, documentation, rows, value, bounds, *, within=None, total=None):
    """A histogram without labels of `value` (an expression) over `rows`."""
    if value is not None:
        rows = rows.annotate(value=value)
    buckets, sum_value = _bucket_counts(rows, bounds, within=within, total=total)
    family = HistogramMetricFamily(name, documentation)
    family.add_metric([], buckets, sum_value=sum_value)
    return family


def _bucket_counts(rows, bounds, *, within=None, total=None) -> tuple[list, float]:
    """One aggregate query: how many `rows` lie within each bound (by default their annotated
    `value` at most the bound), and the sum (by default of `value`, in seconds if a duration)."""
    within = within or (lambda bound: Q(value__lte=bound))
    counts = rows.aggregate(
        count=Count("pk"),
        total=total if total is not None else Sum("value"),
        **{f"le{number}": Count("pk", filter=within(bound)) for number, bound in enumerate(bounds)},
    )
    sum_value = counts["total"] or 0.0
    if isinstance(sum_value, timedelta):
        sum_value = sum_value.total_seconds()
    return _buckets(counts, bounds), sum_value


def _buckets(counts: dict, bounds) -> list[tuple[str, int]]:
    return [
        *((str(bound), counts[f"le{number}"]) for number, bound in enumerate(bounds)),
        ("+Inf", counts["count"]),
    ]


# Apart from the process-wide registry, so that nothing but a scrape runs its queries.
_TESSERA = CollectorRegistry(auto_describe=False)
_TESSERA.register(DatabaseCollector())


def exposition() -> bytes:
    """The text a scrape reads: django-prometheus' request metrics, then Tessera's."""
    return generate_latest(REGISTRY) + generate_latest(_TESSERA)
