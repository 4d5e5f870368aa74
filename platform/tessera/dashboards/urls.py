from django.urls import path

from tessera.dashboards import audit_views, report_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("organization/", views.switch_organization, name="switch_organization"),
    path("settings/", views.account_settings, name="settings"),
    path("settings/tokens/<int:pk>/revoke/", views.revoke_token, name="revoke_token"),
    path("models/", views.models_page, name="models"),
    path("models/<int:pk>/promote/", views.promote, name="promote"),
    path("patients/<int:pk>/", views.patient_detail, name="patient"),
    path("patients/<int:pk>/encounters/", views.new_encounter, name="new_encounter"),
    path("students/<int:pk>/", views.student_detail, name="student"),
    path("students/<int:pk>/sessions/", views.new_learning_session, name="new_session"),
    path("visits/<str:visit_kind>/<int:pk>/upload/<str:kind>/", views.upload, name="upload"),
    path("visits/<str:visit_kind>/<int:pk>/analyse/", views.analyse, name="analyse"),
    path("jobs/<uuid:pk>/", views.job_status, name="job_status"),
    path("jobs/<uuid:pk>/retry/", views.retry, name="job_retry"),
    path("results/<int:pk>/feedback/", views.feedback, name="feedback"),
    path("results/<int:pk>/heatmap.png", views.result_heatmap, name="result_heatmap"),
    path("files/<int:pk>/", views.media_file, name="media_file"),
    path("files/<int:pk>/preview.png", views.media_preview, name="media_preview"),
    path("audit/", audit_views.audit_page, name="audit"),
    path("audit/export.csv", audit_views.audit_export, name="audit_export"),
    path("reports/", report_views.reports_page, name="reports"),
    path("reports/table/", report_views.report_rows, name="report_rows"),
    path("reports/cohort/", report_views.cohort_report, name="cohort_report"),
    path("reports/<uuid:pk>/download/", report_views.report_download, name="report_download"),
    path("reports/schedules/", report_views.schedule_report, name="schedule_report"),
    path(
        "reports/schedules/<int:pk>/cancel/",
        report_views.unschedule_report,
        name="unschedule_report",
    ),
    path("patients/<int:pk>/report/", report_views.patient_report, name="patient_report"),
    path("students/<int:pk>/report/", report_views.student_report, name="student_report"),
]
