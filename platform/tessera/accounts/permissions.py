"""Who may do what, in one place: the API, the pages and the admin ask these functions and
never repeat the rules. A user acts only inside organizations they belong to, with what their
role allows there:

| role | read records, results, models | write records, upload, analyse, feedback | admin |
| --- | --- | --- | --- |
| org admin | yes | yes | yes |
| clinician / teacher | yes | yes | no |
| analyst | yes | no | no |
| viewer | yes | no | no |

(admin: members, webhooks, data-subject requests, promoting models.) Model versions belong to no
organization: every member reads those that serve their kinds of organization (the model card,
held-out metrics and limits of what answers them), and an admin of an organization of that kind
promotes one.
"""

from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from tessera.accounts.models import Membership, Organization, Role
from tessera.accounts.selectors import organizations_of


class Capability(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMINISTER = "administer"


ROLE_CAPABILITIES: dict[str, set[Capability]] = {
    Role.ORG_ADMIN: {Capability.READ, Capability.WRITE, Capability.ADMINISTER},
    Role.CLINICIAN: {Capability.READ, Capability.WRITE},
    Role.TEACHER: {Capability.READ, Capability.WRITE},
    Role.ANALYST: {Capability.READ},
    Role.VIEWER: {Capability.READ},
}


def roles_with(capability: Capability) -> list[str]:
    return [role for role, allowed in ROLE_CAPABILITIES.items() if capability in allowed]


def organizations_where(
    *, user: AbstractBaseUser | AnonymousUser, capability: Capability
) -> QuerySet[Organization]:
    return organizations_of(user=user, roles=roles_with(capability))


def can(
    *, user: AbstractBaseUser | AnonymousUser, capability: Capability, organization: Organization
) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return Membership.objects.filter(
        user=user, organization=organization, role__in=roles_with(capability)
    ).exists()


def model_kinds_readable_by(*, user: AbstractBaseUser | AnonymousUser) -> set[str]:
    """The kinds of organization (clinic, school) whose model versions `user` may read."""
    return set(
        organizations_where(user=user, capability=Capability.READ).values_list("kind", flat=True)
    )


def model_kinds_promotable_by(*, user: AbstractBaseUser | AnonymousUser) -> set[str]:
    """The kinds of organization whose model versions `user` may promote."""
    return set(
        organizations_where(user=user, capability=Capability.ADMINISTER).values_list(
            "kind", flat=True
        )
    )
