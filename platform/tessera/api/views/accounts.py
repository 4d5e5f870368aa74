"""Organizations, members and your own tokens."""

from django.db.models import F
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from tessera.accounts.models import ApiToken, Membership, Organization
from tessera.accounts.permissions import (
    Capability,
    may_issue_tokens,
)
from tessera.accounts.services import (
    add_member,
    change_role,
    issue_api_token,
    remove_member,
    revoke_api_token,
)
from tessera.api import serializers
from tessera.api.access import ScopedViewMixin
from tessera.api.pagination import Cursor
from tessera.api.views.common import (
    LIST_BACKENDS,
    PROBLEM,
    ReportRequestMixin,
)


class OrganizationViewSet(ReportRequestMixin, ScopedViewMixin, viewsets.ReadOnlyModelViewSet):
    """Organizations you belong to, with your role in each."""

    base_queryset = Organization.objects.all()
    serializer_class = serializers.OrganizationSerializer
    ordering = ["name"]

    def get_serializer_context(self) -> dict:
        roles = dict(
            Membership.objects.filter(user=self.request.user).values_list("organization_id", "role")
        )
        return {**super().get_serializer_context(), "roles": roles}

    def report_scope(self, organization: Organization) -> dict:
        return {"organization": organization}

    @extend_schema(responses=serializers.MemberSerializer(many=True))
    @action(detail=True)
    def members(self, request, pk=None):
        """The organization's members by username, in pages like every list."""
        organization = self.get_object()
        pages = Cursor()
        pages.ordering = "username"
        memberships = organization.memberships.select_related("user").annotate(
            username=F("user__username")
        )
        page = pages.paginate_queryset(memberships, request, view=None)
        return pages.get_paginated_response(serializers.MemberSerializer(page, many=True).data)


class TokenViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Your own API tokens: see when each was last used, revoke one, and — signed in with your
    password (the settings page), not with a token — issue one (its secret is shown once). A
    token cannot mint tokens: revoking a leaked one must be the end of it."""

    serializer_class = serializers.TokenSerializer
    permission_classes = [permissions.IsAuthenticated]
    ordering = ["-created_at"]
    queryset = ApiToken.objects.none()  # for the schema: the model, hence the id's type

    def get_queryset(self):
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(responses={201: serializers.NewTokenSerializer, 400: PROBLEM, 403: PROBLEM})
    def create(self, request):
        if not may_issue_tokens(user=request.user, auth=request.auth):
            self.permission_denied(
                request,
                message="a token cannot issue tokens: sign in and use your settings page, or "
                "`manage.py issue_token`",
            )
        asked = self.get_serializer(data=request.data)
        asked.is_valid(raise_exception=True)
        token, token.key = issue_api_token(user=request.user, name=asked.validated_data["name"])
        return Response(serializers.NewTokenSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=serializers.TokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        token = self.get_object()
        revoke_api_token(token=token)
        return Response(serializers.TokenSerializer(token).data)


class MemberViewSet(
    ScopedViewMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Who belongs to your organizations. Organization admins add an existing account by
    username, change a member's role or remove them; an organization always keeps an admin."""

    base_queryset = Membership.objects.select_related("user", "organization")
    serializer_class = serializers.MemberSerializer
    write_capability = Capability.ADMINISTER
    filter_backends = LIST_BACKENDS
    filterset_fields = ["organization", "role"]
    search_fields = ["user__username"]
    ordering_fields = ["created_at"]
    ordering = ["organization__name", "user__username"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_create(self, serializer) -> None:
        organization = serializer.validated_data["organization"]
        self.check_write(organization)
        serializer.instance = add_member(
            organization=organization,
            username=serializer.validated_data["user"]["username"],
            role=serializer.validated_data["role"],
        )

    @extend_schema(request=serializers.MemberRoleSerializer, responses=serializers.MemberSerializer)
    def partial_update(self, request, pk=None):
        membership = self.get_object()
        asked = serializers.MemberRoleSerializer(data=request.data)
        asked.is_valid(raise_exception=True)
        membership = change_role(membership=membership, role=asked.validated_data["role"])
        return Response(self.get_serializer(membership).data)

    def perform_destroy(self, instance: Membership) -> None:
        remove_member(membership=instance)
