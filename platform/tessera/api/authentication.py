"""API tokens in the `Authorization` header, as `Token tsr_…` or `Bearer tsr_…`."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, throttling

from tessera.accounts.models import ApiToken
from tessera.accounts.services import authenticate_api_token
from tessera.audit.context import bind_user

SCHEMES = ("token", "bearer")


class ApiTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in SCHEMES:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "the Authorization header must be 'Token <key>' or 'Bearer <key>'"
            )
        token = authenticate_api_token(key=header[1])
        if token is None:
            raise exceptions.AuthenticationFailed(
                "this token is unknown, revoked or its user is inactive"
            )
        bind_user(token.user)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class TokenRateThrottle(throttling.UserRateThrottle):
    """TESSERA_API_RATE per token (each integration its own budget), per user in the browser."""

    def get_cache_key(self, request, view) -> str | None:
        if isinstance(request.auth, ApiToken):
            return self.cache_format % {"scope": self.scope, "ident": f"token-{request.auth.pk}"}
        return super().get_cache_key(request, view)


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "`Authorization: Bearer tsr_…` (or `Token tsr_…`); "
            "`python manage.py issue_token USERNAME` issues one.",
        }
