"""Affect from transcripts is a new analysis: organizations that already read affect from text
keep doing so for what a recording says, except EU schools, where it starts off (the admin page
explains it; tessera.accounts.policy)."""

from django.db import migrations

TRANSCRIPT = "emotion_transcript"


def turn_on_where_text_affect_is_on(apps, schema_editor):
    Organization = apps.get_model("accounts", "Organization")
    for organization in Organization.objects.all():
        eu_school = organization.kind == "school" and organization.jurisdiction == "EU"
        allowed = list(organization.allowed_analyses)
        if not eu_school and "emotion_text" in allowed and TRANSCRIPT not in allowed:
            organization.allowed_analyses = [*allowed, TRANSCRIPT]
            organization.save(update_fields=["allowed_analyses"])


def turn_off(apps, schema_editor):
    Organization = apps.get_model("accounts", "Organization")
    for organization in Organization.objects.all():
        if TRANSCRIPT in organization.allowed_analyses:
            organization.allowed_analyses = [
                analysis for analysis in organization.allowed_analyses if analysis != TRANSCRIPT
            ]
            organization.save(update_fields=["allowed_analyses"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_needs_person_threshold")]

    operations = [migrations.RunPython(turn_on_where_text_affect_is_on, turn_off)]
