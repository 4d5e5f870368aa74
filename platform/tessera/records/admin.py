from collections.abc import Callable

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from tessera.accounts.admin import OrganizationScopedAdmin
from tessera.records.kinds import KINDS, kind_accepting, visit_of
from tessera.records.models import (
    Cohort,
    DicomSender,
    Encounter,
    LearningSession,
    MediaAsset,
    Patient,
    Student,
)
from tessera.records.services import (
    add_media,
    change_record,
    create_cohort,
    create_encounter,
    create_learning_session,
    create_patient,
    create_student,
)
from tessera.records.uploads import UploadRejected, validate_upload

organization_filter = ("organization", admin.RelatedOnlyFieldListFilter)
cohort_filter = ("cohort", admin.RelatedOnlyFieldListFilter)


class SavedThroughServices(OrganizationScopedAdmin):
    """Creates a record with its service (`creates`, given the form's fields) and changes it
    with `change_record`, as the API and the pages do: the same rules, whoever writes."""

    creates: Callable[..., Model]

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        return type(self).creates(**form.cleaned_data)

    def save_model(self, request, obj, form, change) -> None:
        if change:  # the form has set the changed fields on `obj`
            change_record(
                record=obj, changes={name: getattr(obj, name) for name in form.changed_data}
            )
        # else: save_form created it

    def save_related(self, request, form, formsets, change) -> None:
        if change:
            super().save_related(request, form, formsets, change)
        # else: the service wrote all there is of a new record


@admin.register(Cohort)
class CohortAdmin(SavedThroughServices):
    creates = create_cohort
    list_display = ["name", "organization", "created_at"]
    list_filter = [organization_filter]
    search_fields = ["name"]


@admin.register(Patient)
class PatientAdmin(SavedThroughServices):
    creates = create_patient
    list_display = ["full_name", "mrn", "organization", "cohort", "birth_date", "sex"]
    list_filter = [organization_filter, cohort_filter, "sex"]
    search_fields = ["full_name", "mrn"]
    readonly_fields = ["pseudonym", "created_at", "updated_at"]
    list_select_related = ["organization", "cohort"]


@admin.register(Student)
class StudentAdmin(SavedThroughServices):
    creates = create_student
    list_display = ["full_name", "student_number", "organization", "cohort", "grade"]
    list_filter = [organization_filter, cohort_filter, "grade"]
    search_fields = ["full_name", "student_number"]
    readonly_fields = ["pseudonym", "created_at", "updated_at"]
    list_select_related = ["organization", "cohort"]


class VisitAdmin(SavedThroughServices):
    """An encounter or a learning session, with what was uploaded for it (uploads go through
    the media page)."""

    @admin.display(description="Files")
    def files(self, visit) -> str:
        assets = list(visit.media.order_by("created_at"))
        if not assets:
            return "None yet"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a> {} ({})</li>',
                (
                    (
                        reverse("admin:records_mediaasset_change", args=[asset.pk]),
                        asset.get_kind_display(),
                        asset.original_filename,
                        filesizeformat(asset.size_bytes),
                    )
                    for asset in assets
                ),
            ),
        )

    def get_readonly_fields(self, request, obj=None):
        shown = super().get_readonly_fields(request, obj)
        return shown if obj is None else [*shown, "files"]


@admin.register(Encounter)
class EncounterAdmin(VisitAdmin):
    creates = create_encounter
    list_display = ["patient", "occurred_at", "reason", "clinician"]
    list_filter = ["occurred_at"]
    search_fields = ["patient__full_name", "patient__mrn", "reason"]
    date_hierarchy = "occurred_at"
    list_select_related = ["patient", "clinician"]


@admin.register(LearningSession)
class LearningSessionAdmin(VisitAdmin):
    creates = create_learning_session
    list_display = ["student", "occurred_at", "subject_area", "title", "teacher"]
    list_filter = ["subject_area", "occurred_at"]
    search_fields = ["student__full_name", "student__student_number", "title"]
    date_hierarchy = "occurred_at"
    list_select_related = ["student", "teacher"]


class MediaUploadForm(forms.ModelForm):
    """The kind, the file, and one visit of a kind that takes it: a field per kind of visit
    (`encounter`, `learning_session`), which MediaAssetAdmin adds with the visits the user
    administers."""

    file = forms.FileField(help_text="Validated before anything is stored.")

    class Meta:
        model = MediaAsset
        fields = ["kind"]

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
        cleaned["attached_to"] = cleaned[accepting.visit_field]
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
        "visit",
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

    @admin.display(description="Visit")
    def visit(self, asset: MediaAsset) -> str:
        return str(visit_of(asset))

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            visits = {
                kind.visit_field: forms.ModelChoiceField(
                    self.scoped(request, kind.visit_model.objects.all()), required=False
                )
                for kind in KINDS
            }
            kwargs["form"] = type("MediaUploadForm", (MediaUploadForm,), visits)
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["kind", *(kind.visit_field for kind in KINDS), "file"]
        return self.readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def save_form(self, request, form, change):
        upload = form.cleaned_data["file"]
        return add_media(
            attached_to=form.cleaned_data["attached_to"],
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


@admin.register(DicomSender)
class DicomSenderAdmin(OrganizationScopedAdmin):
    """The PACSs and modalities allowed to send to the DICOM listener, by calling AE title."""

    list_display = ["ae_title", "organization", "description", "created_at"]
    list_filter = [organization_filter]
    search_fields = ["ae_title", "description"]
