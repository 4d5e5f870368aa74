from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

handler404 = "tessera.api.problems.not_found"
handler500 = "tessera.api.problems.server_error"

admin.site.site_header = "Tessera administration"
admin.site.site_title = "Tessera admin"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("tessera.api.urls")),
    path("", include("tessera.dashboards.urls")),
]
