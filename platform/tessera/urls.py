from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path, reverse_lazy

from tessera.accounts import views as account_views
from tessera.api.problems import unknown_endpoint
from tessera.api.views import dicomweb
from tessera.api.views.fhir import (
    DiagnosticReportRead,
    DiagnosticReportSearch,
    PatientImport,
    PatientRead,
)

handler404 = "tessera.api.problems.not_found"


def _uid(name: str) -> str:
    """A URL part that is a DICOM UID: digits and dots, at most 64."""
    return rf"(?P<{name}>[0-9][0-9.]{{0,63}})"


handler500 = "tessera.api.problems.server_error"

admin.site.site_header = "Tessera administration"
admin.site.site_title = "Tessera admin"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("login/verify/", account_views.verify, name="two_factor_verify"),
    path("settings/two-factor/", account_views.setup, name="two_factor"),
    # Changing the password ends every other session of the user (Django's session auth hash).
    path(
        "settings/password/",
        auth_views.PasswordChangeView.as_view(success_url=reverse_lazy("password_change_done")),
        name="password_change",
    ),
    path(
        "settings/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("tessera.api.urls")),
    re_path(r"^dicomweb/studies/?$", dicomweb.StudiesView.as_view(), name="dicomweb_studies"),
    re_path(rf"^dicomweb/studies/{_uid('study')}/?$", dicomweb.StudyView.as_view()),
    re_path(rf"^dicomweb/studies/{_uid('study')}/series/?$", dicomweb.StudySeriesView.as_view()),
    re_path(
        rf"^dicomweb/studies/{_uid('study')}/series/{_uid('series')}/?$",
        dicomweb.SeriesView.as_view(),
    ),
    re_path(
        rf"^dicomweb/studies/{_uid('study')}/series/{_uid('series')}/metadata/?$",
        dicomweb.SeriesMetadataView.as_view(),
    ),
    re_path(
        rf"^dicomweb/studies/{_uid('study')}/series/{_uid('series')}/instances/?$",
        dicomweb.SeriesInstancesView.as_view(),
    ),
    re_path(
        rf"^dicomweb/studies/{_uid('study')}/series/{_uid('series')}/instances/{_uid('instance')}/?$",
        dicomweb.InstanceView.as_view(),
    ),
    re_path(
        rf"^dicomweb/studies/{_uid('study')}/series/{_uid('series')}/instances/{_uid('instance')}"
        r"/frames/(?P<frames>[1-9][0-9]{0,5}(,[1-9][0-9]{0,5}){0,99})/?$",
        dicomweb.FramesView.as_view(),
    ),
    path("fhir/DiagnosticReport", DiagnosticReportSearch.as_view(), name="fhir_reports"),
    path("fhir/DiagnosticReport/<int:pk>", DiagnosticReportRead.as_view(), name="fhir_report"),
    path("fhir/Patient", PatientImport.as_view(), name="fhir_patients"),
    path("fhir/Patient/<int:pk>", PatientRead.as_view(), name="fhir_patient"),
    re_path(r"^api/", unknown_endpoint),
    path("", include("tessera.dashboards.urls")),
]
