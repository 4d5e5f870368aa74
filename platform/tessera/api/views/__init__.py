"""REST endpoints under /api/v1/: thin, each one scoping its queryset to the user's
organizations and calling the services that the pages and the admin call too. One module per
area; `common` holds what they share."""

from tessera.api.views.accounts import MemberViewSet, OrganizationViewSet, TokenViewSet
from tessera.api.views.jobs import JobViewSet, ModelVersionViewSet, ResultViewSet
from tessera.api.views.records import (
    CohortViewSet,
    EncounterViewSet,
    LearningSessionViewSet,
    MediaViewSet,
    PatientViewSet,
    StudentViewSet,
)
from tessera.api.views.reports import ReportViewSet
from tessera.api.views.tutoring import LibraryVersionViewSet
from tessera.api.views.webhooks import WebhookDeliveryViewSet, WebhookSubscriptionViewSet

__all__ = [
    "CohortViewSet",
    "EncounterViewSet",
    "JobViewSet",
    "LearningSessionViewSet",
    "LibraryVersionViewSet",
    "MediaViewSet",
    "MemberViewSet",
    "ModelVersionViewSet",
    "OrganizationViewSet",
    "PatientViewSet",
    "ReportViewSet",
    "ResultViewSet",
    "StudentViewSet",
    "TokenViewSet",
    "WebhookDeliveryViewSet",
    "WebhookSubscriptionViewSet",
]
