"""An organization admin reads their schools' library versions in the admin and adds the next
one; none is changed or deleted."""

import json

from django import forms
from django.contrib import admin

from tessera.accounts.admin import HistoryAdmin, OrganizationScopedAdmin
from tessera.refusals import Refused
from tessera.tutoring.models import LibraryVersion, TutoringHead
from tessera.tutoring.services import import_library, parse_library, taggable_affects


class NewVersionForm(forms.ModelForm):
    """A new version: the whole library as JSON (as the library page exports it)."""

    interventions = forms.JSONField(
        help_text='A list of interventions, each {"id", "title", "description", "affects", '
        '"subjects"} and optionally "grades": [lowest, highest]. Saving writes the next version.'
    )

    class Meta:
        model = LibraryVersion
        fields = ["organization", "interventions"]

    def clean(self) -> dict:
        data = super().clean()
        organization = data.get("organization")
        if organization is not None and "interventions" in data:
            try:
                parse_library(
                    json.dumps({"interventions": data["interventions"]}),
                    known_affects=taggable_affects(organization=organization, estimated=()),
                )
            except Refused as refusal:
                raise forms.ValidationError(refusal.message) from refusal
        return data


@admin.register(LibraryVersion)
class LibraryVersionAdmin(OrganizationScopedAdmin):
    """Versions are kept as written: a change is a new version, added here, on the library
    page or over the API."""

    list_display = ["__str__", "organization", "number", "change", "created_by", "created_at"]
    list_filter = [("organization", admin.RelatedOnlyFieldListFilter)]
    readonly_fields = ["number", "change", "created_by", "created_at"]
    form = NewVersionForm

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        version = import_library(
            organization=form.cleaned_data["organization"],
            by=request.user,
            document=json.dumps({"interventions": form.cleaned_data["interventions"]}),
            known_affects=(),
        )
        obj.pk, obj.number = version.pk, version.number


@admin.register(TutoringHead)
class TutoringHeadAdmin(HistoryAdmin, OrganizationScopedAdmin):
    """Read only: heads are taught by training runs (`manage.py train_from_feedback school`),
    each with the held-out comparison that decided whether it is used."""

    list_display = ["__str__", "organization", "verdicts", "in_use", "created_at"]
    list_filter = [("organization", admin.RelatedOnlyFieldListFilter), "in_use"]
    readonly_fields = ["organization", "library", "verdicts", "metrics", "in_use", "decision"]
    exclude = ["weights"]
