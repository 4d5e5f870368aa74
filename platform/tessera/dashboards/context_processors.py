"""What every page's header needs: the organization switcher and the user's current role."""

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from tessera.accounts.models import Membership
from tessera.accounts.selectors import memberships_of
from tessera.records.kinds import kind_of

SESSION_ORGANIZATION = "organization_id"


def current_membership(request: HttpRequest) -> tuple[Membership | None, list[Membership]]:
    """The membership the user chose with the switcher (the first by name until they choose),
    and all of theirs; read once per request."""
    if not hasattr(request, "_tessera_memberships"):
        memberships = list(memberships_of(user=request.user).order_by("organization__name"))
        chosen = request.session.get(SESSION_ORGANIZATION)
        current = next(
            (m for m in memberships if m.organization_id == chosen),
            memberships[0] if memberships else None,
        )
        request._tessera_memberships = (current, memberships)
    return request._tessera_memberships


def organization(request: HttpRequest) -> dict:
    """Lazy, so that parts of pages (a job card polled every second) read nothing for it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "current_membership": SimpleLazyObject(lambda: current_membership(request)[0]),
        "memberships": SimpleLazyObject(lambda: current_membership(request)[1]),
        # Whether the organization keeps an intervention library (the menu's Library).
        "suggests_tutoring": SimpleLazyObject(lambda: _suggests_tutoring(request)),
    }


def _suggests_tutoring(request: HttpRequest) -> bool:
    membership, _ = current_membership(request)
    return membership is not None and kind_of(membership.organization).suggests_tutoring
