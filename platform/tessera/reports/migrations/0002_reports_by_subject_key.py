"""A person's report names them by their key (records 0004 made the keys), instead of a pair of
nullable keys. The old keys go in 0003, in a transaction of their own: PostgreSQL refuses to
alter a table with pending trigger events."""

import django.db.models.deletion
from django.db import migrations, models

# The key field of each kind of person, as the models said when this was written.
PEOPLE = ("patient", "student")


def immediate_constraints(schema_editor) -> None:
    """Check foreign keys as each row changes, so the ALTERs after the data leave none pending."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def by_key(apps, schema_editor) -> None:
    immediate_constraints(schema_editor)
    keys = apps.get_model("records", "SubjectKey").objects
    reports = apps.get_model("reports", "Report").objects
    for field in PEOPLE:
        reports.filter(**{f"{field}__isnull": False}).update(
            subject_key=models.Subquery(
                keys.filter(**{field: models.OuterRef(field)}).values("pk")[:1]
            )
        )


def by_pairs_again(apps, schema_editor) -> None:
    immediate_constraints(schema_editor)
    keys = apps.get_model("records", "SubjectKey").objects
    apps.get_model("reports", "Report").objects.update(
        **{
            field: models.Subquery(keys.filter(pk=models.OuterRef("subject_key")).values(field)[:1])
            for field in PEOPLE
        }
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0001_initial"),
        ("records", "0004_visit_and_subject_keys"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="report",
            name="report_subject_fits_its_kind",
        ),
        migrations.AddField(
            model_name="report",
            name="subject_key",
            field=models.ForeignKey(
                blank=True,
                help_text="For a patient's or a student's report: whose it is.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="reports",
                to="records.subjectkey",
            ),
        ),
        migrations.RunPython(by_key, by_pairs_again),
    ]
