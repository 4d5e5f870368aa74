"""Writes for analysis jobs, one module per sub-domain: `requests` (with the organization's
policy, publishing, the sweeper, retries), `claims` (leases), `results` (how a job ends),
`feedback` and `model_versions`. Callers import them from here.

A job moves queued → preprocessing (a CPU worker holds its lease) → running (a GPU worker holds
it) → succeeded | failed | cancelled. Every transition is a conditional update, so two workers
handed the same message cannot both take the job.
"""

from tessera.jobs.services.claims import (
    claim_for_inference,
    claim_for_preprocessing,
    claim_more_for_inference,
    hand_to_inference,
    lease_length,
    release_for_retry,
    renew_leases,
    retry_delay,
    worker_name,
)
from tessera.jobs.services.feedback import record_feedback
from tessera.jobs.services.model_versions import (
    json_safe,
    promote_model_version,
    register_model_version,
)
from tessera.jobs.services.requests import (
    inputs_to_leave_out,
    publish,
    request_analysis,
    retry_job,
    sweep_stale_jobs,
    wait_for_transcript,
)
from tessera.jobs.services.results import cancel_job, complete_job, fail_job

__all__ = [
    "cancel_job",
    "claim_for_inference",
    "claim_for_preprocessing",
    "claim_more_for_inference",
    "complete_job",
    "fail_job",
    "hand_to_inference",
    "inputs_to_leave_out",
    "json_safe",
    "lease_length",
    "promote_model_version",
    "publish",
    "record_feedback",
    "register_model_version",
    "release_for_retry",
    "renew_leases",
    "request_analysis",
    "retry_delay",
    "retry_job",
    "sweep_stale_jobs",
    "wait_for_transcript",
    "worker_name",
]
