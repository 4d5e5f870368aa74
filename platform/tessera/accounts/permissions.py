"""Who may do what, in one place: the API, the pages and the admin ask these functions and
never repeat the rules. A user acts only inside organizations they belong to, with what their
role allows there (`ROLE_CAPABILITIES`):

| capability | org admin | clinician / teacher | analyst | viewer |
| --- | --- | --- | --- | --- |
| read records, results, reports; see the models page | yes | yes | yes | yes |
| write records, upload, analyse, give feedback, ask for reports | yes | yes | no | no |
| curate the school's intervention library | yes | teacher | no | no |
| administer: members, webhooks | yes | no | no | no |
| read the access log | yes | no | no | no |
| promote a model version | yes | no | no | no |
| download a DICOM original | yes | no | no | no |
| export a person's data, erase a person | yes | no | no | no |

Model versions belong to no organization: every member reads those that serve their kinds of
organization (the model card, held-out metrics and limits of what answers them), and an admin of
an organization of that kind promotes one (`may_promote`). Every member issues API tokens for
themselves, signed in with their password: a token cannot issue tokens (`may_issue_tokens`).
"""

from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from tessera.accounts.models import ApiToken, Membership, Organization, Role
from tessera.accounts.selectors import organizations_of


class Capability(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMINISTER = "administer"
    READ_ACCESS_LOG = "read_access_log"
    PROMOTE_MODELS = "promote_models"
    # The identifiable originals: DICOM files as uploaded, and each image's way back to the
    # PACS (its original UIDs and accession number).
    READ_ORIGINALS = "read_originals"
    EXPORT_SUBJECT = "export_subject"
    ERASE_SUBJECT = "erase_subject"
    CURATE = "curate"  # edit the organization's intervention library


ROLE_CAPABILITIES: dict[str, set[Capability]] = {
    Role.ORG_ADMIN: set(Capability),
    Role.CLINICIAN: {Capability.READ, Capability.WRITE},
    Role.TEACHER: {Capability.READ, Capability.WRITE, Capability.CURATE},
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
        organizations_where(user=user, capability=Capability.PROMOTE_MODELS).values_list(
            "kind", flat=True
        )
    )


def may_promote(*, user: AbstractBaseUser | AnonymousUser, serves: str) -> bool:
    """Whether `user` may make a version that serves `serves` (clinic, school) the active one."""
    return serves in model_kinds_promotable_by(user=user)


def may_issue_tokens(*, user: AbstractBaseUser | AnonymousUser, auth: object) -> bool:
    """A signed-in member issues their own tokens, signed in with their password (`auth` is
    how the request authenticated): a token cannot issue tokens, so revoking a leaked one is
    the end of it."""
    return user.is_authenticated and user.is_active and not isinstance(auth, ApiToken)


def administered_organizations(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Organization]:
    """Where `user` administers: the organizations whose rows the admin site shows them."""
    return organizations_where(user=user, capability=Capability.ADMINISTER)
