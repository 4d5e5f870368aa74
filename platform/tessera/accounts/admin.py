"""Django admin for organizations, memberships and tokens, usable by organization admins.

An organization admin (a staff user with the org_admin role somewhere) sees and edits only the
rows of the organizations they administer; superusers see everything. `OrganizationScopedAdmin`
is the one place that rule lives for every app's admin.
"""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserCreationForm
from django.db import models
from django.db.models import Q

from tessera.accounts import two_factor
from tessera.accounts.models import ApiToken, Membership, Organization, Role, one_line_header
from tessera.accounts.permissions import administered_organizations
from tessera.accounts.policy import TRANSCRIPT_AFFECT_HELP, Analysis
from tessera.accounts.selectors import organization_of, scoped_to
from tessera.accounts.services import (
    set_membership,
    set_outgoing_authorization,
    sync_staff_status,
)


class PermissionsFromMay:
    """Admin permissions from one rule, `_may(request, obj=None)`."""

    def _administered(self, request):
        return administered_organizations(user=request.user)

    def has_module_permission(self, request) -> bool:
        return self._may(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._may(request, obj)

    def has_add_permission(self, request) -> bool:
        return self._may(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._may(request, obj)


class HistoryAdmin(admin.ModelAdmin):
    """A history: shown, never added to, changed or deleted through the admin."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class OrganizationScopedAdmin(PermissionsFromMay, admin.ModelAdmin):
    """Admin whose rows, choices and permissions stop at the user's administered organizations."""

    def get_queryset(self, request):
        return self.scoped(request, super().get_queryset(request))

    def scoped(self, request, queryset):
        """The rows of `queryset` in the organizations the user administers (all of them for
        a superuser)."""
        if request.user.is_superuser:
            return queryset
        return scoped_to(queryset, organizations=self._administered(request))

    def _may(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return True
        administered = self._administered(request)
        if obj is None:
            return request.user.is_staff and administered.exists()
        return administered.filter(pk=organization_of(obj).pk).exists()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        # A superuser keeps the admin's own choices (and their ordering).
        if not request.user.is_superuser and hasattr(related, "ORGANIZATION_LOOKUP"):
            kwargs["queryset"] = self.scoped(request, related._default_manager.all())
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# A URL typed without a scheme is https (Django 6's default, asked for now).
HTTPS_UNLESS_SAID = {"assume_scheme": "https"}


def _https_unless_said(field, **kwargs):
    if isinstance(field, models.URLField):
        kwargs.update(HTTPS_UNLESS_SAID)
    return field.formfield(**kwargs)


FORGET = "-"
# the form's field for each destination's Authorization header (Organization.AUTHORIZATION_FIELDS)
CREDENTIAL_FIELDS = {"pacs": "pacs_dicomweb_credentials", "fhir": "fhir_server_credentials"}


def _credentials_field(where: str) -> forms.CharField:
    return forms.CharField(
        label=f"{where} Authorization header",
        required=False,
        strip=True,
        validators=[one_line_header],
        widget=forms.PasswordInput(render_value=False),
        help_text=f"What Tessera sends as the Authorization header to the {where}, e.g. "
        "“Bearer eyJ…” or “Basic dXNlcjpwYXNz”. Kept encrypted and never shown again: leave "
        f"empty to keep what is stored, type {FORGET} to forget it.",
    )


class OrganizationForm(forms.ModelForm):
    allowed_analyses = forms.MultipleChoiceField(
        choices=Analysis.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Analyses the law forbids for this organization are refused on save. "
        + TRANSCRIPT_AFFECT_HELP,
    )
    pacs_dicomweb_credentials = _credentials_field("PACS DICOMweb")
    fhir_server_credentials = _credentials_field("FHIR server")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for destination, name in CREDENTIAL_FIELDS.items():
            sealed = Organization.AUTHORIZATION_FIELDS[destination]
            if name in self.fields and getattr(self.instance, sealed, ""):
                self.fields[name].widget.attrs["placeholder"] = "one is kept (hidden)"

    class Meta:
        model = Organization
        formfield_callback = _https_unless_said
        fields = [
            "name",
            "slug",
            "kind",
            "jurisdiction",
            "allowed_analyses",
            "require_two_factor_for_clinicians",
            "encrypt_media",
            "keep_dicom_originals",
            "dicom_unknown_patients",
            "dicom_visit",
            "pacs_send",
            "pacs_ae_title",
            "pacs_host",
            "pacs_port",
            "pacs_dicomweb_url",
            "pacs_dicomweb_credentials",
            "fhir_server_url",
            "fhir_server_credentials",
            "needs_person_below",
        ]


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    form = OrganizationForm
    formfield_overrides = {models.URLField: HTTPS_UNLESS_SAID}
    list_display = ["name", "kind", "jurisdiction", "created_at"]
    list_filter = ["kind", "jurisdiction"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def get_readonly_fields(self, request, obj=None):
        # Kind and jurisdiction decide what the law allows: only platform operators change them.
        if request.user.is_superuser:
            return []
        return ["slug", "kind", "jurisdiction"]

    def get_prepopulated_fields(self, request, obj=None):
        return self.prepopulated_fields if request.user.is_superuser else {}

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        for destination, name in CREDENTIAL_FIELDS.items():
            if typed := form.cleaned_data.get(name):
                set_outgoing_authorization(
                    organization=obj,
                    destination=destination,
                    header="" if typed == FORGET else typed,
                )


@admin.register(Membership)
class MembershipAdmin(OrganizationScopedAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "user__first_name", "user__last_name"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not request.user.is_superuser:
            # Only people already in one of the admin's organizations, or in none yet: never a
            # list of another organization's staff.
            administered = self._administered(request)
            kwargs["queryset"] = (
                get_user_model()
                .objects.filter(
                    Q(memberships__organization__in=administered) | Q(memberships__isnull=True),
                    is_superuser=False,
                )
                .distinct()
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        sync_staff_status(user=obj.user)

    def delete_model(self, request, obj) -> None:
        super().delete_model(request, obj)
        sync_staff_status(user=obj.user)

    def delete_queryset(self, request, queryset) -> None:
        users = [membership.user for membership in queryset.select_related("user")]
        super().delete_queryset(request, queryset)
        for user in users:
            sync_staff_status(user=user)


class NewMemberForm(UserCreationForm):
    """A new account and its first membership, in one step."""

    organization = forms.ModelChoiceField(queryset=Organization.objects.none())
    role = forms.ChoiceField(choices=Role.choices)

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "first_name", "last_name", "email")


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class OrganizationUserAdmin(PermissionsFromMay, UserAdmin):
    """Organization admins create accounts for their staff and edit their names, e-mail and
    whether they are active; only superusers grant staff, superuser or permission flags."""

    add_form = NewMemberForm
    add_fieldsets = (
        (None, {"fields": ("username", "password1", "password2")}),
        ("Person", {"fields": ("first_name", "last_name", "email")}),
        ("Membership", {"fields": ("organization", "role")}),
    )
    member_fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Person", {"fields": ("first_name", "last_name", "email")}),
        ("Status", {"fields": ("is_active", "last_login", "date_joined")}),
    )

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        members = Membership.objects.filter(organization__in=self._administered(request))
        return queryset.filter(pk__in=members.values("user_id"), is_superuser=False)

    def _may(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return True
        if not (request.user.is_staff and self._administered(request).exists()):
            return False
        return obj is None or self.get_queryset(request).filter(pk=obj.pk).exists()

    actions = ["reset_two_factor"]

    @admin.action(description="Reset two-factor sign-in (lost phone)", permissions=["change"])
    def reset_two_factor(self, request, queryset) -> None:
        for user in queryset:
            two_factor.remove_device(user)
        self.message_user(
            request,
            f"Two-factor sign-in reset for {queryset.count()} user(s): they set up their app "
            "again at their next sign-in where it is required.",
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser  # others deactivate: history stays attributable

    def get_fieldsets(self, request, obj=None):
        if obj is not None and not request.user.is_superuser:
            return self.member_fieldsets
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return () if request.user.is_superuser else ("last_login", "date_joined")

    def get_list_filter(self, request):
        return self.list_filter if request.user.is_superuser else ("is_active",)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is None:
            administered = self._administered(request)
            form.base_fields["organization"].queryset = (
                Organization.objects.all() if request.user.is_superuser else administered
            )
        return form

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            organization, role = form.cleaned_data["organization"], form.cleaned_data["role"]
            set_membership(user=obj, organization=organization, role=role)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Superusers only: users manage their own tokens from their settings page."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["user", "prefix", "created_at", "last_used_at"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]

    def has_add_permission(self, request) -> bool:
        return False
