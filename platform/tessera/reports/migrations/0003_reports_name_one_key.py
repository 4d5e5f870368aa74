"""A person's report names them by their key alone (0002 filled it in)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0002_reports_by_subject_key"),
    ]

    operations = [
        migrations.RemoveField(model_name="report", name="patient"),
        migrations.RemoveField(model_name="report", name="student"),
        migrations.AddConstraint(
            model_name="report",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("kind__in", ["patient", "student"]), ("subject_key__isnull", False)
                )
                | models.Q(("kind", "cohort"), ("subject_key__isnull", True)),
                name="report_subject_fits_its_kind",
            ),
        ),
    ]
