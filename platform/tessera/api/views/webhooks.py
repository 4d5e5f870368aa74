"""The organization's webhook subscriptions and the log of their deliveries."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from tessera.accounts.permissions import (
    Capability,
    administered_organizations,
)
from tessera.api import serializers
from tessera.api.access import ScopedViewMixin
from tessera.api.views.common import (
    LIST_BACKENDS,
    PROBLEM,
)
from tessera.webhooks.models import WebhookDelivery, WebhookSubscription
from tessera.webhooks.services import (
    change_subscription,
    create_subscription,
    rotate_secret,
    send_ping,
)


class WebhookSubscriptionViewSet(
    ScopedViewMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Organization admins subscribe a URL to events. Deliveries are POSTed as JSON and signed:
    `Tessera-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>` with the secret
    shown once when the subscription is created (or its secret rotated)."""

    base_queryset = WebhookSubscription.objects.select_related("organization")
    serializer_class = serializers.WebhookSubscriptionSerializer
    write_capability = Capability.ADMINISTER
    filter_backends = LIST_BACKENDS
    filterset_fields = ["organization", "is_active"]
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return self.base_queryset.filter(
            organization__in=administered_organizations(user=self.request.user)
        )

    @extend_schema(
        request=serializers.WebhookSubscriptionSerializer,
        responses={201: serializers.WebhookSubscriptionWithSecretSerializer, 400: PROBLEM},
    )
    def create(self, request):
        asked = self.get_serializer(data=request.data)
        asked.is_valid(raise_exception=True)
        data = asked.validated_data
        self.check_write(data["organization"])
        subscription = create_subscription(
            organization=data["organization"],
            url=data["url"],
            events=data["events"],
            description=data.get("description", ""),
            created_by=request.user,
        )
        body = serializers.WebhookSubscriptionWithSecretSerializer(
            subscription, context=self.get_serializer_context()
        ).data
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer) -> None:
        change_subscription(subscription=serializer.instance, changes=serializer.validated_data)

    @extend_schema(request=None, responses=serializers.WebhookSubscriptionWithSecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        subscription = rotate_secret(subscription=self.get_object())
        return Response(serializers.WebhookSubscriptionWithSecretSerializer(subscription).data)

    @extend_schema(request=None, responses={202: serializers.WebhookDeliverySerializer})
    @action(detail=True, methods=["post"])
    def ping(self, request, pk=None):
        """Send a signed `ping` delivery now, to check a receiver."""
        delivery = send_ping(subscription=self.get_object())
        return Response(
            serializers.WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED
        )


class WebhookDeliveryViewSet(ScopedViewMixin, viewsets.ReadOnlyModelViewSet):
    """The delivery log: every event sent to your subscriptions, its attempts and the last
    answer of the receiver (status code only; its body is not kept)."""

    serializer_class = serializers.WebhookDeliverySerializer
    filter_backends = LIST_BACKENDS
    filterset_fields = ["subscription", "event", "status"]
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

    def get_queryset(self):
        return WebhookDelivery.objects.filter(
            subscription__organization__in=administered_organizations(user=self.request.user)
        )
