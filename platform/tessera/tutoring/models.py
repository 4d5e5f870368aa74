"""A school's intervention library: every edit is a new version, kept, so each suggestion can
say which version it came from."""

from django.conf import settings
from django.db import models

from mlcore.library import InterventionLibrary
from tessera.accounts.models import Organization


class LibraryVersion(models.Model):
    """One version of an organization's intervention library, as it stood after an edit. Never
    changed once written: an edit writes the next version."""

    ORGANIZATION_LOOKUP = "organization"
    AUDIT_TYPE = "intervention_library"
    SUBJECT_LOOKUPS: dict[str, str] = {}

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="intervention_libraries"
    )
    number = models.PositiveIntegerField()
    # Each intervention as mlcore.heads.Intervention.to_dict writes it.
    interventions = models.JSONField()
    change = models.CharField(max_length=300, help_text="What this version changed, in words.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "number"], name="one_library_version_per_number"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization.name}: intervention library v{self.number}"

    @property
    def library(self) -> InterventionLibrary:
        return InterventionLibrary.from_dict(
            {"version": str(self.number), "interventions": self.interventions},
            source=f"v{self.number}",
        )
