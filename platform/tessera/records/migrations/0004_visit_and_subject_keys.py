"""Media name their visit by one key (a VisitKey) instead of a pair of nullable keys; every
person has a SubjectKey, which reports and latest analyses name them by (jobs 0009, reports
0002). Encounters, sessions and people keep their ids. The old keys go in 0005, in a
transaction of their own: PostgreSQL refuses to alter a table with pending trigger events."""

import django.db.models.deletion
from django.db import migrations, models

# (key field, the visit or person model): each one's key, as the models said when this was
# written.
VISITS = (("encounter", "Encounter"), ("learning_session", "LearningSession"))
PEOPLE = (("patient", "Patient"), ("student", "Student"))


def immediate_constraints(schema_editor) -> None:
    """Check foreign keys as each row changes, so the ALTERs after the data leave none pending."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def key_every_visit_and_person(apps, schema_editor) -> None:
    immediate_constraints(schema_editor)
    for keys, records in (("VisitKey", VISITS), ("SubjectKey", PEOPLE)):
        key_model = apps.get_model("records", keys)
        for field, model_name in records:
            ids = apps.get_model("records", model_name).objects.values_list("pk", flat=True)
            key_model.objects.bulk_create(
                (key_model(**{f"{field}_id": pk}) for pk in ids.iterator()), batch_size=1000
            )
    VisitKey = apps.get_model("records", "VisitKey")
    MediaAsset = apps.get_model("records", "MediaAsset")
    for field, _ in VISITS:
        MediaAsset.objects.filter(**{f"{field}__isnull": False}).update(
            visit_key=models.Subquery(
                VisitKey.objects.filter(**{field: models.OuterRef(field)}).values("pk")[:1]
            )
        )


def media_by_their_visit_again(apps, schema_editor) -> None:
    immediate_constraints(schema_editor)
    VisitKey = apps.get_model("records", "VisitKey")
    MediaAsset = apps.get_model("records", "MediaAsset")
    MediaAsset.objects.update(
        **{
            field: models.Subquery(
                VisitKey.objects.filter(pk=models.OuterRef("visit_key")).values(field)[:1]
            )
            for field, _ in VISITS
        }
    )


def _one_of(first: str, second: str) -> models.Q:
    return models.Q((f"{first}__isnull", False), (f"{second}__isnull", True)) | models.Q(
        (f"{first}__isnull", True), (f"{second}__isnull", False)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0003_printable_names"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="mediaasset",
            name="media_kind_matches_its_subject",
        ),
        migrations.CreateModel(
            name="VisitKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "encounter",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="visit_key",
                        to="records.encounter",
                    ),
                ),
                (
                    "learning_session",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="visit_key",
                        to="records.learningsession",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=_one_of("encounter", "learning_session"),
                        name="visit_key_names_one_visit",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="SubjectKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "patient",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="subject_key",
                        to="records.patient",
                    ),
                ),
                (
                    "student",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="subject_key",
                        to="records.student",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=_one_of("patient", "student"), name="subject_key_names_one_person"
                    ),
                ],
            },
        ),
        migrations.AddField(
            model_name="mediaasset",
            name="visit_key",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="media",
                to="records.visitkey",
            ),
        ),
        migrations.RunPython(key_every_visit_and_person, media_by_their_visit_again),
    ]
