"""Jobs and latest analyses name their visit or person by its key alone (0009 filled it in)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0009_jobs_and_latest_analyses_by_key"),
    ]

    operations = [
        migrations.RemoveField(model_name="analysisjob", name="encounter"),
        migrations.RemoveField(model_name="analysisjob", name="learning_session"),
        migrations.RemoveField(model_name="latestanalysis", name="patient"),
        migrations.RemoveField(model_name="latestanalysis", name="student"),
        migrations.AlterField(
            model_name="analysisjob",
            name="visit_key",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="jobs",
                to="records.visitkey",
            ),
        ),
        migrations.AlterField(
            model_name="latestanalysis",
            name="subject_key",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="latest_analysis",
                to="records.subjectkey",
            ),
        ),
    ]
