"""The API's side of the one permission layer (tessera.accounts.permissions): querysets scoped
to the user's organizations (another organization's object is 404, never 403), and writes
allowed only where the user's role has the capability (403)."""

from rest_framework import permissions

from tessera.accounts.models import Organization
from tessera.accounts.permissions import Capability, can
from tessera.accounts.selectors import organization_of, organizations_of, scoped_to
from tessera.audit import services as audit


class RoleInOrganization(permissions.BasePermission):
    message = "your role in this organization does not allow this"

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request, view, obj) -> bool:
        guarded = getattr(view, "action_capabilities", {}).get(view.action)
        if guarded is not None:
            capability, self.message = guarded
        elif request.method in permissions.SAFE_METHODS:
            return True  # visible means readable: the queryset is already scoped
        else:
            capability = getattr(view, "write_capability", Capability.WRITE)
        return can(user=request.user, capability=capability, organization=organization_of(obj))


class ScopedViewMixin:
    """Subclasses set `base_queryset`; reads see only the user's organizations."""

    permission_classes = [RoleInOrganization]
    write_capability = Capability.WRITE
    # Actions that need more than reading or writing, reads included:
    # action -> (the capability, why it is refused).
    action_capabilities: dict[str, tuple[Capability, str]] = {}
    base_queryset = None

    def get_queryset(self):
        return scoped_to(
            self.base_queryset.all(), organizations=organizations_of(user=self.request.user)
        )

    def get_object(self):
        obj = super().get_object()
        if self.request.method in permissions.SAFE_METHODS and audit.is_audited(type(obj)):
            downloads = self.action in ("download", "original")
            action = audit.Action.DOWNLOAD if downloads else audit.Action.VIEW
            audit.record(obj, action=action)
        return obj

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        if page is not None and audit.is_audited(queryset.model):
            audit.record_each(page, action=audit.Action.LIST)
        return page

    def check_write(self, organization: Organization) -> None:
        """For a create: the parent named in the body is visible (the serializer checked); may
        this user write in its organization?"""
        if not can(
            user=self.request.user, capability=self.write_capability, organization=organization
        ):
            self.permission_denied(self.request, message=RoleInOrganization.message)
