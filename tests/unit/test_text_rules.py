"""Names and identifiers refuse the characters that make text lie on a screen (controls, bidi
overrides and isolates, invisible zero-width characters) with a sentence naming the character
and where; free text has a maximum length. Attacked through the API, the admin's services and
the schema that integration engineers read."""

import pytest

from tessera.records.services import create_cohort, create_patient
from tests.unit.api import assert_problem, client_for

pytestmark = pytest.mark.django_db

HOSTILE = [
    ("Ada\x07Lovelace", "a bell character (BEL), U+0007, at character 4 of 12"),
    ("Ada\x1b[31mLovelace", "an escape character (ESC), U+001B, at character 4 of 16"),
    ("Ada\u202eecalevoL", "a right-to-left override character, U+202E, at character 4 of 12"),
    ("Ada\u2066Lovelace", "a left-to-right isolate character, U+2066, at character 4 of 12"),
    ("Ada\u200bLovelace", "a zero width space character, U+200B, at character 4 of 12"),
    ("Ada\ufeffLovelace", "a zero width no-break space character, U+FEFF, at character 4 of 12"),
    ("Ada\nLovelace", "a line break, U+000A, at character 4 of 12"),
    ("Ada\x85Lovelace", "a control character, U+0085, at character 4 of 12"),
]
RULE = (
    "names and identifiers may not contain control, right-to-left override or invisible "
    "characters. Type it again without it."
)


@pytest.mark.parametrize(("name", "where"), HOSTILE)
def test_a_name_with_a_hidden_character_is_refused_saying_which_and_where(
    people, clinic, name, where
):
    client = client_for(people["clinician"])
    response = client.post(
        "/api/v1/patients/",
        {"organization": clinic.pk, "mrn": "H-1", "full_name": name},
        format="json",
    )
    body = assert_problem(response, 400, "validation")
    assert body["errors"]["full_name"] == [f"This holds {where}: {RULE}"]
    response = client.post(
        "/api/v1/patients/",
        {"organization": clinic.pk, "mrn": f"H{name}", "full_name": "Ada Lovelace"},
        format="json",
    )
    assert "mrn" in assert_problem(response, 400, "validation")["errors"]
    assert not clinic.patients.exists()


def test_names_of_every_script_are_kept(people, clinic):
    names = ["Renée Łukasiewicz", "李小龍", "Nguyễn Thị Minh Khai", "O'Brien-Ó Súilleabháin"]
    for number, name in enumerate(names):
        response = client_for(people["clinician"]).post(
            "/api/v1/patients/",
            {"organization": clinic.pk, "mrn": f"N-{number}", "full_name": name},
            format="json",
        )
        assert response.status_code == 201, response.content
    assert sorted(clinic.patients.values_list("full_name", flat=True)) == sorted(names)


def test_services_refuse_them_too(clinic):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="right-to-left override"):
        create_patient(organization=clinic, mrn="S-1", full_name="Eve\u202eevE")
    with pytest.raises(ValidationError, match="zero width space"):
        create_cohort(organization=clinic, name="Ward\u200b 3")


def test_free_text_has_a_documented_maximum(people, clinic):
    client = client_for(people["admin"])
    response = client.post(
        "/api/v1/cohorts/",
        {"organization": clinic.pk, "name": "Ward 9", "description": "x" * 100_000},
        format="json",
    )
    body = assert_problem(response, 400, "validation")
    assert body["errors"]["description"] == ["Ensure this field has no more than 2000 characters."]
    assert not clinic.cohorts.exists()
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]
    assert components["CohortRequest"]["properties"]["description"]["maxLength"] == 2000
    assert components["FeedbackRequest"]["properties"]["comment"]["maxLength"] == 2000
    name = components["PatientRequest"]["properties"]["full_name"]
    assert name["maxLength"] == 200
    assert name["pattern"].startswith("^[^\\u0000-\\u001f")
