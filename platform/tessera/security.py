"""The Content-Security-Policy: strict everywhere (settings.CONTENT_SECURITY_POLICY), with the
few allowances that pages we do not write need."""

from csp.middleware import CSPMiddleware

# Pages that are not ours keep their inline styles (the admin's widgets, Swagger UI's page).
# Scripts stay 'self' everywhere: the API docs load their start-up script as a file.
_STYLE_ALLOWANCES = ("/admin/", "/api/v1/docs/")


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def get_policy_parts(self, request, response, report_only: bool = False):
        parts = super().get_policy_parts(request, response, report_only)
        if request.path.startswith(_STYLE_ALLOWANCES):
            parts.update = {**(parts.update or {}), "style-src": ["'unsafe-inline'"]}
        return parts
