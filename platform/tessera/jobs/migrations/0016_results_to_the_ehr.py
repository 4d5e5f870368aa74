import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """PACS deliveries become result deliveries (to the PACS or to a FHIR server): the log
    keeps its rows, each one a delivery to the PACS."""

    dependencies = [
        ("jobs", "0015_results_to_the_pacs"),
        ("reports", "0003_reports_name_one_key"),
    ]

    operations = [
        migrations.RenameModel(old_name="PacsDelivery", new_name="ResultDelivery"),
        migrations.AlterModelOptions(
            name="resultdelivery",
            options={"ordering": ["-created_at"], "verbose_name_plural": "result deliveries"},
        ),
        migrations.AlterField(
            model_name="resultdelivery",
            name="result",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="deliveries",
                to="jobs.analysisresult",
            ),
        ),
        migrations.AlterField(
            model_name="resultdelivery",
            name="sent_objects",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="What the destination stored: SOP instance UIDs (PACS), resource "
                "locations (FHIR).",
            ),
        ),
        migrations.AddField(
            model_name="resultdelivery",
            name="destination",
            field=models.CharField(
                choices=[("pacs", "PACS"), ("fhir", "FHIR server")], default="pacs", max_length=4
            ),
        ),
        migrations.AddField(
            model_name="resultdelivery",
            name="report_status",
            field=models.CharField(
                blank=True,
                help_text="FHIR: the DiagnosticReport status sent (preliminary, final, amended).",
                max_length=12,
            ),
        ),
        migrations.AddField(
            model_name="resultdelivery",
            name="report",
            field=models.ForeignKey(
                blank=True,
                help_text="FHIR: the PDF report sent as the DiagnosticReport's presentedForm.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="reports.report",
            ),
        ),
    ]
