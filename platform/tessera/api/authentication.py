"""API tokens in the `Authorization` header, as `Token tsr_…` or `Bearer tsr_…`."""

from django.core.cache.backends.redis import RedisCache
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
    """TESSERA_API_RATE per token (each integration its own budget), per user in the browser.

    Counted, not logged: DRF's own throttle reads and rewrites the list of every request's time
    in the period (6,000 of them at the default rate) on each request. Here each period-long
    window has a counter in the shared cache (an atomic INCR in Redis), and a request is let
    through while this window's count plus the part of the last window's count that still
    overlaps the sliding period stays within the rate: a sliding window, estimated, at one
    increment and one read per request."""

    def get_cache_key(self, request, view) -> str | None:
        if isinstance(request.auth, ApiToken):
            return self.cache_format % {"scope": self.scope, "ident": f"token-{request.auth.pk}"}
        return super().get_cache_key(request, view)

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        ident = self.get_cache_key(request, view)
        if ident is None:
            return True
        now = self.timer()
        window, gone = divmod(now, self.duration)
        overlap = 1.0 - gone / self.duration  # of the last window, still inside the period
        key = f"{ident}:{int(window)}"
        lasts = int(2 * self.duration - gone) + 1  # while the next window still reads it
        count = self._add(key, 1, lasts)
        before = self.cache.get(f"{ident}:{int(window) - 1}", 0)
        estimate = before * overlap + count
        if estimate <= self.num_requests:
            return True
        self._add(key, -1, lasts)  # a refused request does not count against later ones
        # Until this window's count alone fits, or the last window's share has shrunk enough.
        waits = [self.duration - gone]
        if before and count <= self.num_requests:
            waits.append((estimate - self.num_requests) / before * self.duration)
        self.retry_after = max(1.0, min(waits))
        return False

    def wait(self) -> float:
        return self.retry_after

    def _add(self, key: str, delta: int, lasts: int) -> int:
        """The counter at `key` changed by `delta`: atomically in Redis, whose INCR keeps the
        key's expiry; elsewhere (the embedded file cache, which has no atomic increment, nor
        had DRF's list) read and written back with it."""
        if isinstance(self.cache, RedisCache):
            self.cache.add(key, 0, timeout=lasts)
            return self.cache.incr(key, delta)
        value = self.cache.get(key, 0) + delta
        self.cache.set(key, value, timeout=lasts)
        return value


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
