"""Reads for the pages: what a signed-in user may see, organization by organization."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count

from tessera.accounts.models import Membership, Organization
from tessera.accounts.selectors import memberships_of


@dataclass(frozen=True)
class OrganizationSummary:
    membership: Membership
    patients: int
    students: int
    media: int

    @property
    def organization(self) -> Organization:
        return self.membership.organization


def organization_summaries(*, user: AbstractBaseUser) -> list[OrganizationSummary]:
    memberships = memberships_of(user=user).annotate(
        patient_count=Count("organization__patients", distinct=True),
        student_count=Count("organization__students", distinct=True),
        media_count=Count("organization__media", distinct=True),
    )
    return [
        OrganizationSummary(
            membership=membership,
            patients=membership.patient_count,
            students=membership.student_count,
            media=membership.media_count,
        )
        for membership in memberships
    ]
