"""A school's intervention library over the API: its versions, and a new one written whole."""

import json

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from tessera.accounts.models import Organization
from tessera.accounts.permissions import Capability
from tessera.accounts.selectors import organizations_of
from tessera.api import serializers
from tessera.api.access import ScopedViewMixin
from tessera.api.views.common import LIST_BACKENDS, PROBLEM
from tessera.jobs.selectors import affects_estimated
from tessera.records.kinds import kind_of
from tessera.tutoring.models import LibraryVersion
from tessera.tutoring.services import import_library, library_in_effect


class LibraryVersionViewSet(
    ScopedViewMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Versions of your schools' intervention libraries, newest first (`?organization=` for one
    school's). Each suggestion a result makes names the version it came from. Teachers and
    organization admins POST a whole library to make the next version (an edit, an import);
    versions are never changed or deleted."""

    base_queryset = LibraryVersion.objects.select_related("organization", "created_by")
    serializer_class = serializers.LibraryVersionSerializer
    write_capability = Capability.CURATE
    filter_backends = LIST_BACKENDS
    filterset_fields = ["organization"]
    ordering_fields = ["number", "created_at"]
    ordering = ["organization", "-number"]
    parser_classes = [JSONParser]  # a library is nested JSON, which a form cannot carry

    def list(self, request, *args, **kwargs):
        for organization in _schools_listed(request.user, request.query_params.get("organization")):
            library_in_effect(organization=organization)  # a school's first read seeds it
        return super().list(request, *args, **kwargs)

    @extend_schema(
        responses={201: serializers.LibraryVersionSerializer, 400: PROBLEM, 403: PROBLEM}
    )
    def create(self, request):
        asked = self.get_serializer(data=request.data)
        asked.is_valid(raise_exception=True)
        organization = asked.validated_data["organization"]
        self.check_write(organization)
        version = import_library(
            organization=organization,
            by=request.user,
            document=json.dumps({"interventions": asked.validated_data["interventions"]}),
            known_affects=affects_estimated(serves=organization.kind),
        )
        body = self.get_serializer(version).data
        return Response(body, status=status.HTTP_201_CREATED)


def _schools_listed(user, wanted: str | None) -> list[Organization]:
    """The user's schools (the one `wanted`, where it names one)."""
    organizations = organizations_of(user=user)
    if wanted and wanted.isdigit():
        organizations = organizations.filter(pk=wanted)
    return [
        organization for organization in organizations if kind_of(organization).suggests_tutoring
    ]
