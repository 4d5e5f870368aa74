"""The management side of the API: members, cohorts, model versions and webhook
subscriptions — who may read them, who may change them, and what they refuse."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tessera.accounts.models import Membership, Role
from tessera.api.authentication import TokenRateThrottle
from tessera.jobs.models import ModelVersion
from tessera.jobs.services import promote_model_version, register_model_version
from tessera.webhooks.models import Event, WebhookDelivery
from tests.unit.api import assert_problem, client_for

pytestmark = pytest.mark.django_db


def test_only_an_organization_admin_manages_members(people, clinic, make_user):
    newcomer = make_user("newcomer")
    body = {"organization": clinic.pk, "username": "newcomer", "role": Role.VIEWER}
    for who in ("clinician", "analyst", "viewer"):
        assert_problem(client_for(people[who]).post("/api/v1/members/", body), 403)
    assert_problem(client_for(people["stranger"]).post("/api/v1/members/", body), 400)
    admin = client_for(people["admin"])
    created = admin.post("/api/v1/members/", body)
    assert created.status_code == 201, created.content
    membership = Membership.objects.get(user=newcomer, organization=clinic)
    assert created.json()["role"] == Role.VIEWER

    promoted = admin.patch(f"/api/v1/members/{membership.pk}/", {"role": Role.CLINICIAN})
    assert promoted.status_code == 200
    membership.refresh_from_db()
    assert membership.role == Role.CLINICIAN
    assert_problem(
        client_for(people["clinician"]).patch(
            f"/api/v1/members/{membership.pk}/", {"role": Role.ORG_ADMIN}
        ),
        403,
    )
    assert_problem(client_for(people["stranger"]).delete(f"/api/v1/members/{membership.pk}/"), 404)
    assert admin.delete(f"/api/v1/members/{membership.pk}/").status_code == 204
    assert not Membership.objects.filter(user=newcomer).exists()


def test_members_are_refused_in_plain_words(people, clinic):
    admin = client_for(people["admin"])
    unknown = admin.post(
        "/api/v1/members/", {"organization": clinic.pk, "username": "nobody", "role": "viewer"}
    )
    assert "no active account is named 'nobody'" in assert_problem(unknown, 400)["detail"]
    twice = admin.post(
        "/api/v1/members/", {"organization": clinic.pk, "username": "viewer", "role": "viewer"}
    )
    assert "already a member" in assert_problem(twice, 400)["detail"]
    teacher_in_a_clinic = admin.patch(
        f"/api/v1/members/{people['viewer'].memberships.get().pk}/", {"role": Role.TEACHER}
    )
    assert "a clinic has no Teacher role" in assert_problem(teacher_in_a_clinic, 400)["detail"]
    last_admin = people["admin"].memberships.get()
    demoted = admin.patch(f"/api/v1/members/{last_admin.pk}/", {"role": Role.VIEWER})
    assert "last admin" in assert_problem(demoted, 400)["detail"]
    assert_problem(admin.delete(f"/api/v1/members/{last_admin.pk}/"), 400)
    last_admin.refresh_from_db()
    assert last_admin.role == Role.ORG_ADMIN


def test_cohorts_are_read_by_all_members_and_written_by_those_who_write(people, clinic):
    made = client_for(people["clinician"]).post(
        "/api/v1/cohorts/", {"organization": clinic.pk, "name": "Ward 3"}
    )
    assert made.status_code == 201, made.content
    assert_problem(
        client_for(people["viewer"]).post(
            "/api/v1/cohorts/", {"organization": clinic.pk, "name": "Ward 4"}
        ),
        403,
    )
    again = client_for(people["admin"]).post(
        "/api/v1/cohorts/", {"organization": clinic.pk, "name": "Ward 3"}
    )
    assert_problem(again, 400, "validation")
    listed = client_for(people["viewer"]).get("/api/v1/cohorts/").json()["results"]
    assert [cohort["name"] for cohort in listed] == ["Ward 3"]
    assert client_for(people["stranger"]).get("/api/v1/cohorts/").json()["results"] == []
    cohort_id = made.json()["id"]
    assert_problem(client_for(people["stranger"]).get(f"/api/v1/cohorts/{cohort_id}/"), 404)


@pytest.fixture
def versions():
    old = promote_model_version(
        version=register_model_version(
            name="clinic-a", serves="clinic", bundle_path="a", metrics={"macro_f1": 0.8}
        ),
        promoted_by=None,
    )
    new = register_model_version(
        name="clinic-b", serves="clinic", bundle_path="b", metrics={"macro_f1": 0.9}
    )
    school = register_model_version(name="school-a", serves="school", bundle_path="s", metrics={})
    return old, new, school


def test_model_versions_are_listed_and_promoted_only_by_an_admin(people, versions):
    old, new, school = versions
    listed = client_for(people["viewer"]).get("/api/v1/model-versions/").json()["results"]
    assert {version["name"] for version in listed} == {"clinic-a", "clinic-b"}, "not the school's"
    assert_problem(client_for(people["clinician"]).get(f"/api/v1/model-versions/{school.pk}/"), 404)
    for who in ("clinician", "analyst", "viewer"):
        refused = client_for(people[who]).post(f"/api/v1/model-versions/{new.pk}/promote/")
        assert_problem(refused, 403)
    promoted = client_for(people["admin"]).post(f"/api/v1/model-versions/{new.pk}/promote/")
    assert promoted.status_code == 200
    assert promoted.json()["status"] == "active"
    assert promoted.json()["promoted_by"] == "admin"
    old.refresh_from_db()
    assert old.status == ModelVersion.Status.RETIRED


def test_webhook_subscriptions_belong_to_organization_admins(people, clinic):
    body = {
        "organization": clinic.pk,
        "url": "https://his.example.org/tessera",
        "events": [Event.JOB_SUCCEEDED, Event.JOB_FAILED],
    }
    for who in ("clinician", "analyst", "viewer"):
        assert_problem(client_for(people[who]).post("/api/v1/webhooks/", body), 403)
        assert client_for(people[who]).get("/api/v1/webhooks/").json()["results"] == []
    admin = client_for(people["admin"])
    created = admin.post("/api/v1/webhooks/", body)
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    subscription_id = created.json()["id"]
    shown = admin.get(f"/api/v1/webhooks/{subscription_id}/").json()
    assert "secret" not in shown, "the secret is shown once"
    rotated = admin.post(f"/api/v1/webhooks/{subscription_id}/rotate-secret/").json()
    assert rotated["secret"] not in ("", secret)
    assert_problem(client_for(people["stranger"]).get(f"/api/v1/webhooks/{subscription_id}/"), 404)
    assert_problem(
        client_for(people["viewer"]).post(f"/api/v1/webhooks/{subscription_id}/ping/"), 404
    )

    ping = admin.post(f"/api/v1/webhooks/{subscription_id}/ping/")
    assert ping.status_code == 202
    assert ping.json()["event"] == "ping"
    log = admin.get(f"/api/v1/webhook-deliveries/?subscription={subscription_id}").json()
    assert [delivery["id"] for delivery in log["results"]] == [ping.json()["id"]]
    assert client_for(people["viewer"]).get("/api/v1/webhook-deliveries/").json()["results"] == []
    assert admin.delete(f"/api/v1/webhooks/{subscription_id}/").status_code == 204
    assert WebhookDelivery.objects.count() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "ftp://his.example.org/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"events": []}, "events"),
        ({"events": ["job.exploded"]}, "events"),
        ({"events": ["ping"]}, "events"),
    ],
)
def test_a_bad_subscription_is_refused_field_by_field(people, clinic, change, field):
    body = {
        "organization": clinic.pk,
        "url": "https://his.example.org/tessera",
        "events": [Event.JOB_SUCCEEDED],
        **change,
    }
    refused = client_for(people["admin"]).post("/api/v1/webhooks/", body)
    assert field in assert_problem(refused, 400, "validation")["errors"]


def test_a_user_issues_lists_and_revokes_only_their_own_tokens(people):
    mine = client_for(people["clinician"])
    assert_problem(mine.post("/api/v1/tokens/", {"name": "minted"}), 403)
    signed_in = APIClient()
    signed_in.force_login(people["clinician"])
    issued = signed_in.post("/api/v1/tokens/", {"name": "HIS bridge"})
    assert issued.status_code == 201, issued.content
    key = issued.json()["key"]
    listed = mine.get("/api/v1/tokens/").json()["results"]
    assert {token["name"] for token in listed} == {"tests", "HIS bridge"}
    assert all("key" not in token for token in listed), "a secret is shown once"
    token_id = issued.json()["id"]
    assert_problem(client_for(people["admin"]).post(f"/api/v1/tokens/{token_id}/revoke/"), 404)
    bridge = APIClient()
    bridge.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert bridge.get("/api/v1/patients/").status_code == 200
    assert mine.post(f"/api/v1/tokens/{token_id}/revoke/").json()["revoked_at"] is not None
    assert_problem(bridge.get("/api/v1/patients/"), 401)


def test_each_token_has_its_own_rate_limit(people, monkeypatch):
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"user": "3/minute"})
    cache.clear()
    bridge, lab = client_for(people["clinician"]), client_for(people["clinician"])
    assert [bridge.get("/api/v1/patients/").status_code for _ in range(3)] == [200] * 3
    throttled = bridge.get("/api/v1/patients/")
    assert_problem(throttled, 429, "throttled")
    assert int(throttled["Retry-After"]) > 0
    assert lab.get("/api/v1/patients/").status_code == 200, "another token, its own budget"
    cache.clear()


def test_the_rate_limit_slides_from_one_window_into_the_next(people, monkeypatch):
    """A token that spent its budget at the end of one window gets no new one the moment the
    next opens: the last window's count weighs by how much of it the sliding period still
    covers, and Retry-After says when enough of it has slid away. Refused requests do not
    count."""
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"user": "4/minute"})
    clock = [659.0]  # the last second of a minute-long window
    monkeypatch.setattr(TokenRateThrottle, "timer", staticmethod(lambda: clock[0]))
    cache.clear()
    bridge = client_for(people["clinician"])

    def status_at(second: float):
        clock[0] = second
        return bridge.get("/api/v1/patients/")

    assert [status_at(659.0).status_code for _ in range(4)] == [200] * 4
    assert status_at(659.5).status_code == 429
    refused = status_at(660.0)  # a new window: 4 of the last still count, and this one
    assert_problem(refused, 429, "throttled")
    assert int(refused["Retry-After"]) == 15  # when a quarter of the last window has slid out
    assert status_at(675.0).status_code == 200  # 4 * 0.75 + 1
    assert status_at(676.0).status_code == 429
    assert status_at(690.0).status_code == 200  # 4 * 0.5 + 2: the refused one did not count
    assert status_at(720.0).status_code == 200  # the next window: 2 of the last, and this one
    cache.clear()
