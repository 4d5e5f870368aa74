from django import forms
from django.contrib import admin
from django.template.defaultfilters import filesizeformat

from tessera.accounts.admin import OrganizationScopedAdmin
from tessera.records.kinds import KINDS, kind_accepting
from tessera.records.models import (
    Cohort,
    Encounter,
    LearningSession,
    MediaAsset,
    Patient,
    Student,
)
from tessera.records.services import add_media
from tessera.records.uploads import UploadRejected, validate_upload

organization_filter = ("organization", admin.RelatedOnlyFieldListFilter)
cohort_filter = ("cohort", admin.RelatedOnlyFieldListFilter)


@admin.register(Cohort)
class CohortAdmin(OrganizationScopedAdmin):
    list_display = ["name", "organization", "created_at"]
    list_filter = [organization_filter]
    search_fields = ["name"]


@admin.register(Patient)
class PatientAdmin(OrganizationScopedAdmin):
    list_display = ["full_name", "mrn", "organization", "cohort", "birth_date", "sex"]
    list_filter = [organization_filter, cohort_filter, "sex"]
    search_fields = ["full_name", "mrn"]
    readonly_fields = ["pseudonym", "created_at", "updated_at"]
    list_select_related = ["organization", "cohort"]


@admin.register(Student)
class StudentAdmin(OrganizationScopedAdmin):
    list_display = ["full_name", "student_number", "organization", "cohort", "grade"]
    list_filter = [organization_filter, cohort_filter, "grade"]
    search_fields = ["full_name", "student_number"]
    readonly_fields = ["pseudonym", "created_at", "updated_at"]
    list_select_related = ["organization", "cohort"]


class MediaInline(admin.TabularInline):
    """What was uploaded for a visit or session; uploads go through the media page."""

    model = MediaAsset
    fields = ["kind", "original_filename", "size", "content_type", "created_at"]
    readonly_fields = fields
    extra = 0
    show_change_link = True

    @admin.display(description="Size")
    def size(self, asset: MediaAsset) -> str:
        return filesizeformat(asset.size_bytes)

    # The parent admin has already checked the organization.
    def has_view_permission(self, request, obj=None) -> bool:
        return True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Encounter)
class EncounterAdmin(OrganizationScopedAdmin):
    list_display = ["patient", "occurred_at", "reason", "clinician"]
    list_filter = ["occurred_at"]
    search_fields = ["patient__full_name", "patient__mrn", "reason"]
    date_hierarchy = "occurred_at"
    list_select_related = ["patient", "clinician"]
    inlines = [MediaInline]


@admin.register(LearningSession)
class LearningSessionAdmin(OrganizationScopedAdmin):
    list_display = ["student", "occurred_at", "subject_area", "title", "teacher"]
    list_filter = ["subject_area", "occurred_at"]
    search_fields = ["student__full_name", "student__student_number", "title"]
    date_hierarchy = "occurred_at"
    list_select_related = ["student", "teacher"]
    inlines = [MediaInline]


class MediaUploadForm(forms.ModelForm):
    file = forms.FileField(help_text="Validated before anything is stored.")

    class Meta:
        model = MediaAsset
        fields = ["kind", "encounter", "learning_session"]

    def clean(self):
        cleaned = super().clean()
        kind, upload = cleaned.get("kind"), cleaned.get("file")
        if not kind:
            return cleaned
        accepting = kind_accepting(kind)
        if [k for k in KINDS if cleaned.get(k.visit_field)] != [accepting]:
            raise forms.ValidationError(
                f"Attach this kind of media to {accepting.visit_described}, and to nothing else."
            )
        if upload:
            try:
                validate_upload(
                    kind=kind,
                    file=upload,
                    filename=upload.name,
                    declared_content_type=upload.content_type,
                )
            except UploadRejected as rejected:
                self.add_error("file", rejected.message)
        return cleaned


@admin.register(MediaAsset)
class MediaAssetAdmin(OrganizationScopedAdmin):
    """Uploads run through the same validation service as every other entry point; stored
    content is immutable, so existing assets are read-only."""

    list_display = ["__str__", "kind", "organization", "size", "content_type", "created_at"]
    list_filter = ["kind", organization_filter]
    search_fields = ["sha256", "original_filename"]
    list_select_related = ["organization"]
    readonly_fields = [
        "organization",
        "encounter",
        "learning_session",
        "kind",
        "sha256",
        "size_bytes",
        "content_type",
        "original_filename",
        "metadata",
        "storage_path",
        "uploaded_by",
        "created_at",
    ]

    @admin.display(description="Size")
    def size(self, asset: MediaAsset) -> str:
        return filesizeformat(asset.size_bytes)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MediaUploadForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["kind", "encounter", "learning_session", "file"]
        return self.readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def save_form(self, request, form, change):
        upload = form.cleaned_data["file"]
        return add_media(
            attached_to=form.cleaned_data["encounter"] or form.cleaned_data["learning_session"],
            kind=form.cleaned_data["kind"],
            file=upload,
            filename=upload.name,
            declared_content_type=upload.content_type,
            uploaded_by=request.user,
        )

    def save_model(self, request, obj, form, change) -> None:
        """add_media already saved the asset in save_form."""

    def save_related(self, request, form, formsets, change) -> None:
        """A media asset has no related rows to save."""
