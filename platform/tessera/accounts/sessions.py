"""How long a session lives: idle expiry is the cookie's age (SESSION_COOKIE_AGE, renewed on
every request); this adds the absolute limit, counted from sign-in."""

import time

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

SIGNED_IN_AT = "tessera_signed_in_at"


@receiver(user_logged_in, dispatch_uid="accounts.note_sign_in_time")
def _note_sign_in_time(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[SIGNED_IN_AT] = int(time.time())


class SessionLifetimeMiddleware:
    """Ends a session TESSERA_SESSION_MAX_SECONDS after sign-in, however busy it kept (a page
    that polls would otherwise stay signed in forever); the idle limit is the cookie's age."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated and "HTTP_AUTHORIZATION" not in request.META:
            signed_in_at = request.session.get(SIGNED_IN_AT)
            too_old = time.time() - settings.TESSERA_SESSION_MAX_SECONDS
            if signed_in_at is None or signed_in_at < too_old:
                logout(request)  # the request goes on signed out: pages send it to sign in
        return self.get_response(request)
