"""A school's intervention library: every edit is a new version, kept, so each suggestion can
say which version it came from."""

from django.conf import settings
from django.db import models

from mlcore.learnt_ranking import LearntRanker
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
    # Each intervention as mlcore.library.Intervention.to_dict writes it.
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


class TutoringHead(models.Model):
    """A tutoring head a training run taught from one school's verdicts, with its held-out
    comparison; the latest one `in_use` orders that school's suggestions. Never changed once
    written, except `in_use` going off when a newer head is used."""

    ORGANIZATION_LOOKUP = "organization"
    AUDIT_TYPE = "tutoring_head"
    SUBJECT_LOOKUPS: dict[str, str] = {}

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="tutoring_heads"
    )
    library = models.ForeignKey(
        LibraryVersion,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The library version it was taught with.",
    )
    # mlcore.learnt_ranking.LearntRanker.to_dict
    weights = models.JSONField()
    verdicts = models.PositiveIntegerField(help_text="Verdicts it learnt from.")
    metrics = models.JSONField(
        default=dict, help_text="hit@3 and NDCG@3 on held-out verdicts, beside the alternatives."
    )
    in_use = models.BooleanField(default=False)
    decision = models.TextField(help_text="Why it is, or is not, in use.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "-created_at", "-pk"]

    def __str__(self) -> str:
        state = "in use" if self.in_use else "not used"
        return f"{self.organization.name}: tutoring head of {self.created_at:%Y-%m-%d} ({state})"

    @property
    def ranker(self) -> LearntRanker:
        return LearntRanker.from_dict(self.weights)
