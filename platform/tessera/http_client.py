"""Tessera's own HTTP requests to systems an organization names (webhook receivers, a PACS, a
FHIR server): through an opener that follows no redirect, since a redirect could carry a signed
payload or a patient's result to a host nobody configured; a redirect is answered as its 3xx."""

import urllib.request


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


NO_REDIRECTS = urllib.request.build_opener(_NoRedirects)
