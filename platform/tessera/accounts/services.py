"""Writes for organizations, memberships and API tokens."""

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tessera.accounts.models import (
    CREDENTIALS,
    ApiToken,
    Membership,
    Organization,
    Role,
    one_line_header,
)
from tessera.accounts.policy import OrganizationKind
from tessera.sealing import seal

TOKEN_PREFIX = "tsr_"
LAST_USE_PRECISION = timedelta(minutes=1)  # how exactly a token's last use is kept


def create_organization(
    *, name: str, slug: str, kind: str, jurisdiction: str, allowed_analyses: list[str] | None = None
) -> Organization:
    organization = Organization(
        name=name,
        slug=slug,
        kind=kind,
        jurisdiction=jurisdiction.upper(),
        allowed_analyses=allowed_analyses or [],
    )
    organization.full_clean()
    organization.save()
    return organization


def set_membership(*, user: AbstractBaseUser, organization: Organization, role: str) -> Membership:
    """Give `user` the `role` in `organization`, replacing the role they had there."""
    membership, _ = Membership.objects.update_or_create(
        user=user, organization=organization, defaults={"role": role}
    )
    sync_staff_status(user=user)
    return membership


ROLES_OF_KIND = {
    OrganizationKind.CLINIC: [Role.ORG_ADMIN, Role.CLINICIAN, Role.ANALYST, Role.VIEWER],
    OrganizationKind.SCHOOL: [Role.ORG_ADMIN, Role.TEACHER, Role.ANALYST, Role.VIEWER],
}


def add_member(*, organization: Organization, username: str, role: str) -> Membership:
    """An organization admin adds an existing account to their organization."""
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise ValidationError({"username": f"no active account is named {username!r}"})
    if Membership.objects.filter(user=user, organization=organization).exists():
        raise ValidationError(
            {"username": f"{username} is already a member; change their role instead"}
        )
    _check_role_fits(organization, role)
    return set_membership(user=user, organization=organization, role=role)


def change_role(*, membership: Membership, role: str) -> Membership:
    _check_role_fits(membership.organization, role)
    with transaction.atomic():
        if role != Role.ORG_ADMIN:
            _keep_an_admin(membership)
        return set_membership(user=membership.user, organization=membership.organization, role=role)


def remove_member(*, membership: Membership) -> None:
    with transaction.atomic():
        _keep_an_admin(membership)
        membership.delete()
    sync_staff_status(user=membership.user)


def _check_role_fits(organization: Organization, role: str) -> None:
    allowed = ROLES_OF_KIND[OrganizationKind(organization.kind)]
    if role not in allowed:
        raise ValidationError(
            {
                "role": f"a {organization.get_kind_display().lower()} has no {Role(role).label} "
                f"role; choose one of: {', '.join(allowed)}"
            }
        )


def _keep_an_admin(membership: Membership) -> None:
    """An organization always keeps an admin: nobody could manage it otherwise. Rows are locked
    so two admins demoting each other at once cannot both succeed."""
    admins = list(
        Membership.objects.select_for_update()
        .filter(organization=membership.organization, role=Role.ORG_ADMIN)
        .values_list("pk", flat=True)
    )
    if admins == [membership.pk]:
        raise ValidationError(
            {"role": "this is the organization's last admin: make someone else admin first"}
        )


def sync_staff_status(*, user: AbstractBaseUser) -> None:
    """Staff status (entry to the Django admin) follows the org_admin role: a user has it while
    they administer an organization, and loses it with their last org_admin membership."""
    is_staff = user.is_superuser or user.memberships.filter(role=Role.ORG_ADMIN).exists()
    if user.is_staff != is_staff:
        user.is_staff = is_staff
        user.save(update_fields=["is_staff"])


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_api_token(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns it with its secret, which is never retrievable again."""
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=key[: len(TOKEN_PREFIX) + 6], key_hash=_hash_key(key)
    )
    return token, key


def revoke_api_token(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def authenticate_api_token(*, key: str) -> ApiToken | None:
    """The active token presented (its `user` active too), or None for an unknown or revoked
    one. Its last use is written at most once a LAST_USE_PRECISION (an integration's every
    request would otherwise write the token's row)."""
    if not key.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=_hash_key(key), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USE_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def set_outgoing_authorization(
    *, organization: Organization, destination: str, header: str
) -> Organization:
    """Keep, sealed, the Authorization header sent to the organization's `destination` ("pacs":
    its DICOMweb STOW-RS; "fhir": its FHIR server), e.g. "Bearer eyJ…"; "" forgets it."""
    field = Organization.AUTHORIZATION_FIELDS[destination]
    header = header.strip()
    one_line_header(header)
    setattr(organization, field, seal(header, purpose=CREDENTIALS) if header else "")
    organization.save(update_fields=[field])
    return organization
