"""Jobs name their visit by its key, latest analyses their person by theirs (records 0004 made
the keys), instead of pairs of nullable keys. The old keys go in 0010, in a transaction of their
own: PostgreSQL refuses to alter a table with pending trigger events."""

import django.db.models.deletion
from django.db import migrations, models

# The key field of each kind of visit and of person, as the models said when this was written.
VISITS = ("encounter", "learning_session")
PEOPLE = ("patient", "student")


def immediate_constraints(schema_editor) -> None:
    """Check foreign keys as each row changes, so the ALTERs after the data leave none pending."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def by_key(apps, schema_editor) -> None:
    immediate_constraints(schema_editor)
    keys = {
        "visit_key": (apps.get_model("records", "VisitKey"), VISITS),
        "subject_key": (apps.get_model("records", "SubjectKey"), PEOPLE),
    }
    for model_name, key in (("AnalysisJob", "visit_key"), ("LatestAnalysis", "subject_key")):
        rows = apps.get_model("jobs", model_name).objects
        key_model, fields = keys[key]
        for field in fields:
            rows.filter(**{f"{field}__isnull": False}).update(
                **{
                    key: models.Subquery(
                        key_model.objects.filter(**{field: models.OuterRef(field)}).values("pk")[:1]
                    )
                }
            )


def by_pairs_again(apps, schema_editor) -> None:
    immediate_constraints(schema_editor)
    for model_name, key, key_model, fields in (
        ("AnalysisJob", "visit_key", "VisitKey", VISITS),
        ("LatestAnalysis", "subject_key", "SubjectKey", PEOPLE),
    ):
        keys = apps.get_model("records", key_model).objects
        apps.get_model("jobs", model_name).objects.update(
            **{
                field: models.Subquery(keys.filter(pk=models.OuterRef(key)).values(field)[:1])
                for field in fields
            }
        )


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0008_unlike_training_and_rationales_from_evidence"),
        ("records", "0004_visit_and_subject_keys"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="analysisjob",
            name="job_has_one_subject",
        ),
        migrations.RemoveConstraint(
            model_name="latestanalysis",
            name="latest_analysis_of_one_subject",
        ),
        migrations.AddField(
            model_name="analysisjob",
            name="visit_key",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="jobs",
                to="records.visitkey",
            ),
        ),
        migrations.AddField(
            model_name="latestanalysis",
            name="subject_key",
            field=models.OneToOneField(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="latest_analysis",
                to="records.subjectkey",
            ),
        ),
        migrations.RunPython(by_key, by_pairs_again),
    ]
