"""One HTTP POST to an organization's system (its PACS's STOW-RS, its FHIR server), as the
delivery workers make it: no redirects followed (tessera.http_client), a timeout
(TESSERA_DELIVERY_TIMEOUT_SECONDS), an answer in words when the system cannot be reached, and
the Authorization header the organization keeps for it, sealed (accounts:
set_outgoing_authorization)."""

import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings

from tessera.accounts.models import Organization
from tessera.http_client import NO_REDIRECTS
from tessera.refusals import RefusalCode, Refused
from tessera.sealing import SealBroken

USER_AGENT = "Tessera"
ANSWER_LIMIT = 10 * 1024 * 1024  # a STOW or transaction response is small; never read more


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no answer at all
    body: bytes = b""
    unreachable: str = ""  # why there was no answer


def post(url: str, *, body: bytes, content_type: str, accept: str, authorization: str) -> Answer:
    """POST `body`; `authorization`: the Authorization header the system asked for, or ""."""
    headers = {"Content-Type": content_type, "Accept": accept, "User-Agent": USER_AGENT}
    if authorization:
        headers["Authorization"] = authorization
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with NO_REDIRECTS.open(
            request, timeout=settings.TESSERA_DELIVERY_TIMEOUT_SECONDS
        ) as answer:
            return Answer(answer.status, answer.read(ANSWER_LIMIT))
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read(ANSWER_LIMIT))
    except (urllib.error.URLError, OSError, ValueError) as error:
        return Answer(None, unreachable=str(getattr(error, "reason", error)))


def outgoing_authorization(organization: Organization, destination: str) -> str:
    """The Authorization header the organization keeps for `destination` ("pacs", "fhir");
    refused in words when this server's keys no longer open it."""
    try:
        return organization.outgoing_authorization(destination)
    except SealBroken as error:
        raise Refused(
            "the stored credentials cannot be decrypted with this server's keys: an admin "
            "enters them again",
            code=RefusalCode.NO_CREDENTIALS,
        ) from error
