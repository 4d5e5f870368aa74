"""Writes for organizations, memberships and API tokens."""

import hashlib
import secrets

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from tessera.accounts.models import ApiToken, Membership, Organization, Role

TOKEN_PREFIX = "tsr_"


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


def authenticate_api_token(*, key: str) -> AbstractBaseUser | None:
    """The active user a presented token belongs to, or None for an unknown or revoked one."""
    if not key.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=_hash_key(key), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user
