"""The one error a service raises when it will not do what it was asked: an analysis, a
promotion, a correction, a report, a training run.

`message` is written for the person who asked, and the page shows it as it is; `code` names the
reason for a program (the API's problem `type`, and its HTTP status: tessera.api.problems).
Nothing has been written when it is raised.
"""

from enum import StrEnum


class RefusalCode(StrEnum):
    POLICY = "policy"  # the law or the organization's policy forbids it
    NO_MODEL = "no_model"  # no model version serves the organization (or can be fine-tuned)
    NO_MEDIA = "no_media"  # nothing (of the right kind) to analyse
    FOREIGN_MEDIA = "foreign_media"  # the chosen files belong to another visit
    FOREIGN = "foreign"  # the record or cohort belongs to another organization
    WRONG_KIND = "wrong_kind"  # a patient's report for a school, say
    BAD_PERIOD = "bad_period"  # the period starts after it ends
    DUPLICATE = "duplicate"
    NOT_RETRYABLE = "not_retryable"  # only failed or cancelled jobs run again
    REJECTED = "rejected"  # a model version its evaluation rejected cannot serve
    EMPTY = "empty"  # a correction that corrects nothing
    UNKNOWN_LABEL = "unknown_label"
    UNKNOWN_INTERVENTION = "unknown_intervention"
    NOT_TRIED = "not_tried"  # whether a suggestion helped, before it was tried
    INVALID_LIBRARY = "invalid_library"  # an intervention library that cannot be one
    TOO_LITTLE_FEEDBACK = "too_little_feedback"
    NO_PACS_IMAGE = "no_pacs_image"  # a result to send to the PACS, without an image from it
    NO_CREDENTIALS = "no_credentials"  # stored credentials this server's keys cannot open
    NO_REPORT = "no_report"  # a result to send to the FHIR server, whose PDF could not be made


class Refused(Exception):
    def __init__(self, message: str, *, code: RefusalCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = RefusalCode(code)
