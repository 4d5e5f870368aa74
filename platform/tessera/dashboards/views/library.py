"""The school's intervention library: every member reads it; teachers and admins edit it, one
intervention at a time or by importing a JSON file; each change is a new version, and every
version can be exported."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tessera.accounts.models import Organization
from tessera.accounts.permissions import Capability, can
from tessera.audit import services as audit
from tessera.dashboards.access import current_organization, form_errors, require
from tessera.dashboards.forms import InterventionForm, LibraryImportForm
from tessera.dashboards.selectors import shown
from tessera.dashboards.views.common import sentence
from tessera.jobs.selectors import affects_estimated
from tessera.records.kinds import kind_of
from tessera.refusals import Refused
from tessera.tutoring.models import LibraryVersion
from tessera.tutoring.selectors import library_export, library_versions
from tessera.tutoring.services import (
    import_library,
    library_in_effect,
    retire_intervention,
    save_intervention,
    taggable_affects,
)

# A library is a short JSON file (the shipped one is 2 kB): anything larger is not one.
IMPORT_LIMIT = 1_000_000


@login_required
@require_http_methods(["GET", "POST"])
def library_page(request: HttpRequest) -> HttpResponse:
    organization = _school(request)
    current = library_in_effect(organization=organization)
    affects = taggable_affects(
        organization=organization, estimated=affects_estimated(serves=organization.kind)
    )
    form = InterventionForm(affects=affects)
    if request.method == "POST":
        require(request, Capability.CURATE, organization)
        form = InterventionForm(request.POST, affects=affects)
        if form.is_valid():
            try:
                version = save_intervention(
                    organization=organization,
                    by=request.user,
                    entry=form.entry(),
                    known_affects=affects,
                )
            except Refused as refusal:
                messages.error(request, sentence(refusal.message))
            else:
                messages.success(request, f"Saved as version {version.number}. {version.change}")
                return redirect("library")
        else:
            messages.error(request, form_errors(form))
    elif request.GET.get("edit"):
        editing = next(
            (item for item in current.interventions if item["id"] == request.GET["edit"]), None
        )
        if editing is not None:
            form = InterventionForm(initial=InterventionForm.initial_for(editing), affects=affects)
    return render(
        request,
        "dashboards/library.html",
        {
            "organization": organization,
            "current": shown(LibraryVersion.objects.all(), user=request.user, pk=current.pk),
            "versions": library_versions(organization=organization)[:20],
            "form": form,
            "import_form": LibraryImportForm(),
            "can_curate": can(
                user=request.user, capability=Capability.CURATE, organization=organization
            ),
        },
    )


@login_required
@require_POST
def retire(request: HttpRequest, intervention_id: str) -> HttpResponse:
    organization = _school(request)
    require(request, Capability.CURATE, organization)
    try:
        version = retire_intervention(
            organization=organization, by=request.user, intervention_id=intervention_id
        )
    except Refused as refusal:
        messages.error(request, sentence(refusal.message))
    else:
        messages.success(request, f"Saved as version {version.number}. {version.change}")
    return redirect("library")


@login_required
@require_POST
def import_file(request: HttpRequest) -> HttpResponse:
    organization = _school(request)
    require(request, Capability.CURATE, organization)
    form = LibraryImportForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return redirect("library")
    upload = form.cleaned_data["file"]
    if upload.size > IMPORT_LIMIT:
        messages.error(request, "The file is over 1 MB: a library is a short JSON file.")
        return redirect("library")
    try:
        version = import_library(
            organization=organization,
            by=request.user,
            document=upload.read(),
            known_affects=affects_estimated(serves=organization.kind),
        )
    except Refused as refusal:
        messages.error(request, sentence(refusal.message))
    else:
        messages.success(request, f"Saved as version {version.number}. {version.change}")
    return redirect("library")


@login_required
@require_GET
def export(request: HttpRequest, pk: int) -> HttpResponse:
    """One version as JSON, to keep or to import elsewhere (404 outside its organization)."""
    version = shown(
        LibraryVersion.objects.all(), user=request.user, pk=pk, action=audit.Action.EXPORT
    )
    response = HttpResponse(
        json.dumps(library_export(version=version), indent=2, ensure_ascii=False),
        content_type="application/json",
    )
    name = f"{version.organization.slug}-interventions-v{version.number}.json"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _school(request: HttpRequest) -> Organization:
    """The school the user works in; a clinic has no intervention library."""
    organization = current_organization(request)
    if not kind_of(organization).suggests_tutoring:
        raise Http404
    return organization
