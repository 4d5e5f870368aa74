"""What every page checks: the same permission layer as the API (`accounts.permissions`), with
records someone may not see answered 404 and writes their role does not allow answered 403."""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from tessera.accounts.models import Organization
from tessera.accounts.permissions import Capability, can
from tessera.dashboards import selectors
from tessera.dashboards.context_processors import current_membership


def current_organization(request: HttpRequest) -> Organization:
    """The organization the user is working in (404 when they belong to none)."""
    membership, _ = current_membership(request)
    if membership is None:
        raise Http404
    return membership.organization


def require(request: HttpRequest, capability: Capability, organization: Organization) -> None:
    if not can(user=request.user, capability=capability, organization=organization):
        raise PermissionDenied(f"Your role in {organization.name} does not allow this.")


def visible_or_404(model, request: HttpRequest, pk):
    return get_object_or_404(selectors.visible(model.objects.all(), user=request.user), pk=pk)


def form_errors(form) -> str:
    """A form's errors in one line, each after the label of its field."""
    return " ".join(
        f"{form.fields[name].label}: {error}" if name in form.fields else error
        for name, errors in form.errors.items()
        for error in errors
    )
