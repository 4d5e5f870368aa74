from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from tessera.api import views

app_name = "api"
router = DefaultRouter(trailing_slash=True)
router.register("organizations", views.OrganizationViewSet, basename="organization")
router.register("tokens", views.TokenViewSet, basename="token")
router.register("members", views.MemberViewSet, basename="member")
router.register("cohorts", views.CohortViewSet, basename="cohort")
router.register("patients", views.PatientViewSet, basename="patient")
router.register("students", views.StudentViewSet, basename="student")
router.register("encounters", views.EncounterViewSet, basename="encounter")
router.register("learning-sessions", views.LearningSessionViewSet, basename="learningsession")
router.register("media", views.MediaViewSet, basename="media")
router.register("jobs", views.JobViewSet, basename="job")
router.register("results", views.ResultViewSet, basename="result")
router.register("model-versions", views.ModelVersionViewSet, basename="modelversion")
router.register("library-versions", views.LibraryVersionViewSet, basename="libraryversion")
router.register("reports", views.ReportViewSet, basename="report")
router.register("webhooks", views.WebhookSubscriptionViewSet, basename="webhook")
router.register("webhook-deliveries", views.WebhookDeliveryViewSet, basename="webhookdelivery")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("", include(router.urls)),
]
