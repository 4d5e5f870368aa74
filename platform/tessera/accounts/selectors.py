"""Reads about organizations and who may see what. Every view, admin page and (later) API
endpoint scopes its querysets through `scoped_to`, so the organization boundary lives here once."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Model, QuerySet

from tessera.accounts.models import Membership, Organization


def organizations_of(
    *, user: AbstractBaseUser | AnonymousUser, roles: Iterable[str] | None = None
) -> QuerySet[Organization]:
    """Organizations `user` belongs to, optionally only those where they hold one of `roles`."""
    if not user.is_authenticated or not user.is_active:
        return Organization.objects.none()
    memberships = Membership.objects.filter(user=user)
    if roles is not None:
        memberships = memberships.filter(role__in=list(roles))
    return Organization.objects.filter(pk__in=memberships.values("organization_id"))


def scoped_to(queryset: QuerySet, *, organizations: QuerySet[Organization]) -> QuerySet:
    """Rows of `queryset` that belong to one of `organizations`.

    Each organization-owned model names the path from itself to its organization in
    ORGANIZATION_LOOKUP ("organization", "patient__organization", …).
    """
    lookup = queryset.model.ORGANIZATION_LOOKUP
    key = "pk__in" if lookup == "pk" else f"{lookup}__in"
    return queryset.filter(**{key: organizations})


def organization_of(obj: Model) -> Organization:
    """The organization an organization-owned object belongs to."""
    target = obj
    if obj.ORGANIZATION_LOOKUP == "pk":
        return obj
    for attribute in obj.ORGANIZATION_LOOKUP.split("__"):
        target = getattr(target, attribute)
    return target


def memberships_of(*, user: AbstractBaseUser) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("organization")
