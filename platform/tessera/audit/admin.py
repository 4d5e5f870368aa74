"""The log in the admin site: readable by superusers, and by no one changeable or deletable."""

from django.contrib import admin

from tessera.accounts.admin import HistoryAdmin
from tessera.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(HistoryAdmin):
    list_display = ["at", "actor_name", "action", "object_type", "object_id", "channel", "address"]
    list_filter = ["action", "object_type", "channel"]
    search_fields = ["actor_name", "object_id", "subject"]
    date_hierarchy = "at"
    actions = None

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser
