"""What every page's header needs: the organization switcher and the user's current role."""

from django.http import HttpRequest

from tessera.accounts.models import Membership
from tessera.accounts.selectors import memberships_of

SESSION_ORGANIZATION = "organization_id"


def current_membership(request: HttpRequest) -> tuple[Membership | None, list[Membership]]:
    """The membership the user chose with the switcher (the first by name until they choose),
    and all of theirs."""
    memberships = list(memberships_of(user=request.user).order_by("organization__name"))
    if not memberships:
        return None, memberships
    chosen = request.session.get(SESSION_ORGANIZATION)
    current = next((m for m in memberships if m.organization_id == chosen), memberships[0])
    return current, memberships


def organization(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    current, memberships = current_membership(request)
    return {"current_membership": current, "memberships": memberships}
