"""The baseline of bench/api_load.py: the same patient list from a bare DRF ModelViewSet over the
same table (a ModelSerializer of the same fields, pages of 50, no authentication, audit,
scoping or throttling), beside Tessera's own URLs, under /bare/. Loaded through
bench/bare_settings.py, never by the platform."""

from django.urls import include, path
from rest_framework import pagination, permissions, routers, serializers, viewsets

from tessera.api.serializers import PatientSerializer
from tessera.records.models import Patient
from tessera.urls import urlpatterns as tessera_urlpatterns


class BarePatientSerializer(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = PatientSerializer.Meta.fields


class FiftyPerPage(pagination.PageNumberPagination):
    page_size = 50


class BarePatientViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Patient.objects.order_by("-created_at")
    serializer_class = BarePatientSerializer
    pagination_class = FiftyPerPage
    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = []


router = routers.SimpleRouter()
router.register("patients", BarePatientViewSet, basename="bare-patient")
urlpatterns = [path("bare/", include(router.urls)), *tessera_urlpatterns]
