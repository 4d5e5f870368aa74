"""Two-factor sign-in: a TOTP authenticator app (django-otp), optional for anyone and required
for the clinicians of an organization that asks for it.

After the password, a user with a confirmed authenticator is asked for its code before any page
or API call with their session; a clinician whom an organization requires to use one and who
has none is sent to set one up first. django-otp throttles wrong codes (each failure doubles the
wait) and refuses a code already used.
"""

from base64 import b32encode
from dataclasses import dataclass

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django_otp import login as mark_verified
from django_otp import verify_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from tessera.accounts.models import Membership, Role
from tessera.problem_details import API_PREFIX, plain_problem_response

DEVICE_NAME = "Authenticator app"


@dataclass(frozen=True)
class Standing:
    active: bool  # the user has a confirmed authenticator app
    required: bool  # an organization requires one of them


def standing(user: AbstractBaseUser) -> Standing:
    """Where `user` stands with two-factor sign-in, in one query (the middleware asks on every
    request of a session not yet verified)."""
    active, required = (
        get_user_model()
        .objects.filter(pk=user.pk)
        .annotate(
            active=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)),
            required=Exists(
                Membership.objects.filter(
                    user=OuterRef("pk"),
                    role=Role.CLINICIAN,
                    organization__require_two_factor_for_clinicians=True,
                )
            ),
        )
        .values_list("active", "required")
        .get()
    )
    return Standing(active=active, required=required)


def confirmed_device(user: AbstractBaseUser) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def pending_device(user: AbstractBaseUser) -> TOTPDevice:
    """The authenticator being set up (a new secret, until its first code confirms it)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


@transaction.atomic
def confirm_device(request: HttpRequest, token: str) -> bool:
    """Confirm the pending authenticator with its first code; it replaces any earlier one."""
    device = pending_device(request.user)
    if not device.verify_token(token):
        return False
    TOTPDevice.objects.filter(user=request.user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    mark_verified(request, device)
    return True


def verify(request: HttpRequest, token: str) -> bool:
    """Check a code of the user's authenticator; on success the session counts as verified."""
    device = confirmed_device(request.user)
    if device is None:
        return False
    verified = verify_token(request.user, device.persistent_id, token)
    if verified is None:
        return False
    mark_verified(request, verified)
    return True


def remove_device(user: AbstractBaseUser) -> None:
    TOTPDevice.objects.filter(user=user).delete()


def qr_code_svg(device: TOTPDevice) -> str:
    """The authenticator's otpauth:// address as an SVG QR code (drawn here: no service)."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return image.to_string(encoding="unicode")


def secret_for_typing(device: TOTPDevice) -> str:
    """The secret in base32, in groups of four, for apps set up without a camera."""
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[start : start + 4] for start in range(0, len(secret), 4))


def safe_next(request: HttpRequest, default: str = "/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or default
    allowed = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if allowed else default


class TwoFactorMiddleware:
    """Holds a signed-in session at the code page (or, for a required app not yet set up, the
    set-up page) until its second factor is in. With an app set up, the set-up page is held
    too: the password alone must not replace the app. API calls with a token are not sessions:
    the token was issued to a verified session."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            not user.is_authenticated
            or "HTTP_AUTHORIZATION" in request.META
            or user.is_verified()
            or request.path.startswith(settings.STATIC_URL)
            or request.path in (reverse("login"), reverse("logout"))
        ):
            return self.get_response(request)
        now = standing(user)
        if now.active:
            page, what = "two_factor_verify", "enter the code of your authenticator app"
        elif now.required:
            page, what = "two_factor", "set up an authenticator app"
        else:
            return self.get_response(request)
        if request.path == reverse(page):
            return self.get_response(request)
        if request.path.startswith(API_PREFIX):
            return plain_problem_response(
                status_code=403,
                code="two_factor_required",
                detail=f"two-factor sign-in is not finished: {what} in the browser first",
            )
        return redirect(f"{reverse(page)}?{urlencode({'next': request.get_full_path()})}")
