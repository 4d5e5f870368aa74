"""Reading an organization's intervention library."""

from django.db.models import QuerySet

from mlcore.learnt_ranking import LearntRanker
from tessera.accounts.models import Organization
from tessera.tutoring.models import LibraryVersion, TutoringHead


def library_versions(*, organization: Organization) -> QuerySet[LibraryVersion]:
    """Every version of the organization's library, newest first."""
    return LibraryVersion.objects.filter(organization=organization).select_related("created_by")


def library_export(*, version: LibraryVersion) -> dict:
    """The version as a JSON document that `services.import_library` reads back."""
    return {
        "organization": version.organization.slug,
        "version": version.number,
        "created_at": version.created_at.isoformat(),
        "interventions": version.interventions,
    }


def intervention_titles(*, organization: Organization) -> dict[str, str]:
    """Intervention id → its title in the newest version of the library that holds it (a
    retired intervention keeps the title it had)."""
    titles: dict[str, str] = {}
    for interventions in library_versions(organization=organization).values_list(
        "interventions", flat=True
    ):
        for item in interventions:
            titles.setdefault(item["id"], item["title"])
    return titles


def head_in_use(*, organization_id: int) -> LearntRanker | None:
    """The learnt head that orders the organization's suggestions; None until one has been
    taught and found not worse than the tag match."""
    head = TutoringHead.objects.filter(organization_id=organization_id, in_use=True).first()
    return head.ranker if head is not None else None
