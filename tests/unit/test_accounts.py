"""Organizations, their analysis policy, memberships and API tokens."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from tessera.accounts.models import ApiToken, Role
from tessera.accounts.permissions import administered_organizations
from tessera.accounts.policy import Analysis, default_policy
from tessera.accounts.selectors import organizations_of
from tessera.accounts.services import (
    LAST_USE_PRECISION,
    authenticate_api_token,
    create_organization,
    revoke_api_token,
    set_membership,
)

pytestmark = pytest.mark.django_db


def test_an_eu_school_may_not_infer_emotion_from_voice():
    assert Analysis.EMOTION_FROM_VOICE not in default_policy(kind="school", jurisdiction="EU")
    assert Analysis.EMOTION_FROM_VOICE in default_policy(kind="school", jurisdiction="US")
    assert Analysis.EMOTION_FROM_VOICE in default_policy(kind="clinic", jurisdiction="EU")


def test_enabling_a_prohibited_analysis_is_refused_with_the_reason():
    with pytest.raises(ValidationError, match=r"Art\. 5\(1\)\(f\)"):
        create_organization(
            name="Schule",
            slug="schule",
            kind="school",
            jurisdiction="EU",
            allowed_analyses=[Analysis.TUTORING, Analysis.EMOTION_FROM_VOICE],
        )


def test_an_organization_explains_each_refusal(school, clinic):
    assert "Art. 5(1)(f)" in school.refusal_for(Analysis.EMOTION_FROM_VOICE)
    assert (
        school.refusal_for(Analysis.DIAGNOSIS)
        == "Diagnosis suggestions is not offered to a school."
    )
    assert school.refusal_for(Analysis.TUTORING) is None
    clinic.allowed_analyses = [Analysis.DIAGNOSIS]
    assert "turned off by Test Clinic's policy" in clinic.refusal_for(Analysis.EMOTION_FROM_TEXT)


def test_a_jurisdiction_is_a_two_letter_code():
    with pytest.raises(ValidationError, match="two-letter code"):
        create_organization(name="X", slug="x", kind="clinic", jurisdiction="Europe")


def test_a_user_can_belong_to_several_organizations_with_different_roles(clinic, school, make_user):
    user = make_user("both", organization=clinic, role=Role.ORG_ADMIN)
    set_membership(user=user, organization=school, role=Role.ANALYST)
    assert set(organizations_of(user=user)) == {clinic, school}
    assert list(administered_organizations(user=user)) == [clinic]
    set_membership(user=user, organization=school, role=Role.ORG_ADMIN)  # a role change, not a copy
    assert user.memberships.count() == 2
    assert set(administered_organizations(user=user)) == {clinic, school}


def test_an_inactive_user_sees_no_organization(clinic, make_user):
    user = make_user("gone", organization=clinic)
    user.is_active = False
    assert not organizations_of(user=user).exists()


def test_issue_token_prints_a_token_that_authenticates_its_user(clinic, make_user, capsys):
    user = make_user("integrator", organization=clinic)
    call_command("issue_token", "integrator", "--name", "HIS bridge")
    key = capsys.readouterr().out.strip()
    assert key.startswith("tsr_")
    assert len(key) > 40
    assert authenticate_api_token(key=key).user == user
    token = ApiToken.objects.get(user=user)
    assert token.name == "HIS bridge"
    assert key not in (token.key_hash, token.prefix), "only a hash of the secret is stored"
    assert token.last_used_at is not None


def test_a_tokens_last_use_is_written_at_most_once_a_minute(
    clinic, make_user, capsys, django_assert_num_queries
):
    make_user("busy-bridge", organization=clinic)
    call_command("issue_token", "busy-bridge")
    key = capsys.readouterr().out.strip()
    with django_assert_num_queries(2):  # the token, and its first use written
        authenticate_api_token(key=key)
    first = ApiToken.objects.get().last_used_at
    with django_assert_num_queries(1):  # the token alone: no write within the minute
        authenticate_api_token(key=key)
    assert ApiToken.objects.get().last_used_at == first
    ApiToken.objects.update(last_used_at=first - LAST_USE_PRECISION)
    authenticate_api_token(key=key)
    assert ApiToken.objects.get().last_used_at > first, "a minute on, written again"


def test_a_revoked_or_unknown_token_authenticates_nobody(clinic, make_user, capsys):
    make_user("integrator", organization=clinic)
    call_command("issue_token", "integrator")
    key = capsys.readouterr().out.strip()
    revoke_api_token(token=ApiToken.objects.get())
    assert authenticate_api_token(key=key) is None
    assert authenticate_api_token(key=key[:-1] + "x") is None
    assert authenticate_api_token(key="not-a-token") is None


def test_issue_token_for_an_unknown_user_fails_clearly():
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("issue_token", "nobody")
