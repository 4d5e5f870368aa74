"""Which clinic a hospital's system (a PACS, an EHR) sends to, for the DICOMweb and FHIR
endpoints: one rule for both."""

from tessera.accounts.models import Organization
from tessera.accounts.permissions import Capability, organizations_where
from tessera.accounts.policy import OrganizationKind
from tessera.accounts.selectors import organizations_of
from tessera.api.problems import Problem


def receiving_clinic(request) -> Organization:
    """The clinic what a hospital's system sends (images, patients) is for: the one named by
    `?organization=<id>`, else the only clinic the token's user writes in. Raises Problem:
    404 for an organization not theirs, 403 where they may not write, 400 where they must
    name one."""
    writable = organizations_where(user=request.user, capability=Capability.WRITE).filter(
        kind=OrganizationKind.CLINIC
    )
    named = request.query_params.get("organization")
    if named is not None:
        visible = organizations_of(user=request.user)
        if not named.isdigit() or not visible.filter(pk=named).exists():
            raise Problem("no organization of yours has that id", code="not_found", status_code=404)
        if not writable.filter(pk=named).exists():
            raise Problem(
                "your role in this organization does not allow adding records",
                code="permission_denied",
                status_code=403,
            )
        return writable.get(pk=named)
    clinics = list(writable[:2])
    if not clinics:
        raise Problem(
            "you write in no clinic: a hospital's system sends for a clinic whose clinician or "
            "admin its account is",
            code="permission_denied",
            status_code=403,
        )
    if len(clinics) > 1:
        raise Problem(
            "you write in several clinics: name the one this is for, as ?organization=<id>",
            code="organization_required",
        )
    return clinics[0]
