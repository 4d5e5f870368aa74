"""One HTTP POST to an organization's system (its PACS's STOW-RS, its FHIR server), as the
delivery workers make it: no redirects followed (a redirect could carry a patient's result to a
host nobody configured), a timeout (TESSERA_DELIVERY_TIMEOUT_SECONDS), and an answer in words
when the system cannot be reached."""

import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings

USER_AGENT = "Tessera"
ANSWER_LIMIT = 10 * 1024 * 1024  # a STOW or transaction response is small; never read more


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no answer at all
    body: bytes = b""
    unreachable: str = ""  # why there was no answer


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post(url: str, *, body: bytes, content_type: str, accept: str) -> Answer:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Accept": accept, "User-Agent": USER_AGENT},
    )
    try:
        with _opener.open(request, timeout=settings.TESSERA_DELIVERY_TIMEOUT_SECONDS) as answer:
            return Answer(answer.status, answer.read(ANSWER_LIMIT))
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read(ANSWER_LIMIT))
    except (urllib.error.URLError, OSError, ValueError) as error:
        return Answer(None, unreachable=str(getattr(error, "reason", error)))
