"""One rule per capability: every role of a clinic walks the page and the API operation each
capability guards, and the roles let through are the same on both, and are the roles
`accounts.permissions` gives the capability. (tests/unit/test_api_roles.py walks every API
operation in detail; this walk compares the two interfaces.)"""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import reverse

from tessera.accounts.permissions import Capability, roles_with
from tessera.jobs.services import register_model_version
from tessera.records.services import create_patient
from tests.unit.api import client_for

pytestmark = pytest.mark.django_db
ROLES = ["admin", "clinician", "analyst", "viewer"]
WHEN = "2026-10-05T09:30"


@dataclass
class World:
    clinic: int
    patient: int
    version: int


@dataclass(frozen=True)
class Guarded:
    """The page and the API operation a capability guards; each answers a status and where it
    redirected (pages)."""

    page: Callable[[Client, World], object]
    api: Callable[[Client, World], object] | None


GUARDED = {
    Capability.READ: Guarded(
        page=lambda c, w: c.get(reverse("patient", args=[w.patient])),
        api=lambda c, w: c.get(f"/api/v1/patients/{w.patient}/"),
    ),
    Capability.WRITE: Guarded(
        page=lambda c, w: c.post(reverse("new_encounter", args=[w.patient]), {"occurred_at": WHEN}),
        api=lambda c, w: c.post(
            "/api/v1/encounters/", {"patient": w.patient, "occurred_at": WHEN}, format="json"
        ),
    ),
    Capability.PROMOTE_MODELS: Guarded(
        page=lambda c, w: c.post(reverse("promote", args=[w.version])),
        api=lambda c, w: c.post(f"/api/v1/model-versions/{w.version}/promote/"),
    ),
    Capability.EXPORT_SUBJECT: Guarded(
        page=lambda c, w: c.get(reverse("patient_export", args=[w.patient])),
        api=lambda c, w: c.get(f"/api/v1/patients/{w.patient}/export/"),
    ),
    # A wrong number: those who may erase are told it does not match, and nothing is erased.
    Capability.ERASE_SUBJECT: Guarded(
        page=lambda c, w: c.post(reverse("patient_erase", args=[w.patient]), {"confirm": "no"}),
        api=lambda c, w: c.post(
            f"/api/v1/patients/{w.patient}/erase/", {"confirm": "no"}, format="json"
        ),
    ),
    Capability.READ_ACCESS_LOG: Guarded(page=lambda c, w: c.get(reverse("audit")), api=None),
    Capability.ADMINISTER: Guarded(
        page=lambda c, w: c.get(reverse("admin:accounts_membership_changelist")),
        api=lambda c, w: c.post(
            "/api/v1/members/",
            {"organization": w.clinic, "username": "newcomer", "role": "viewer"},
            format="json",
        ),
    ),
}


def _let_through(response) -> bool:
    """Neither refused (403), hidden (404) nor sent to sign in."""
    if response.status_code in (403, 404):
        return False
    return not (response.status_code == 302 and "login" in response["Location"])


@pytest.fixture
def world(clinic, people, make_user) -> World:
    make_user("newcomer")
    patient = create_patient(organization=clinic, mrn="C-1", full_name="Capable Patient")
    version = register_model_version(name="c1", serves="clinic", bundle_path="c1", metrics={})
    return World(clinic=clinic.pk, patient=patient.pk, version=version.pk)


def _page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("capability", list(GUARDED))
def test_the_pages_and_the_api_let_the_same_roles_through(capability, world, people):
    guarded = GUARDED[capability]
    expected = {role for role in ROLES if _role_of(people[role]) in roles_with(capability)}
    on_pages = {
        role for role in ROLES if _let_through(guarded.page(_page_client(people[role]), world))
    }
    assert on_pages == expected
    if guarded.api is not None:
        on_api = {
            role for role in ROLES if _let_through(guarded.api(client_for(people[role]), world))
        }
        assert on_api == on_pages


def _role_of(user) -> str:
    return user.memberships.get().role


def test_every_member_issues_tokens_signed_in_but_never_with_a_token(people):
    for role in ROLES:
        user = people[role]
        page = _page_client(user).post(reverse("settings"), {"name": "laptop"})
        assert _let_through(page)
        signed_in = client_for(None)
        signed_in.force_login(user)
        assert signed_in.post("/api/v1/tokens/", {"name": "ci"}).status_code == 201
        with_token = client_for(user).post("/api/v1/tokens/", {"name": "ci"})
        assert with_token.status_code == 403
