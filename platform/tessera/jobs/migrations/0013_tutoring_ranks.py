"""Suggestions stored before the library ranked them carried the tutoring head's raw score,
which pages printed as if it were a probability: each keeps its place as a rank, and says how it
was ranked, and the score goes."""

from django.db import migrations

EARLIER = "ranked by the model's tutoring head before it had learnt from any teacher"


def ranks(apps, schema_editor):
    AnalysisResult = apps.get_model("jobs", "AnalysisResult")
    for result in AnalysisResult.objects.exclude(tutoring=[]).iterator():
        if all("rank" in item for item in result.tutoring):
            continue
        result.tutoring = [
            {
                "rank": rank,
                "id": item["id"],
                "title": item["title"],
                "description": "",
                "matches": [],
                "reason": EARLIER,
                "basis": "head",
            }
            for rank, item in enumerate(result.tutoring, start=1)
        ]
        result.save(update_fields=["tutoring"])


def scores(apps, schema_editor):
    AnalysisResult = apps.get_model("jobs", "AnalysisResult")
    for result in AnalysisResult.objects.exclude(tutoring=[]).iterator():
        result.tutoring = [
            {"id": item["id"], "title": item["title"], "score": None} for item in result.tutoring
        ]
        result.save(update_fields=["tutoring"])


class Migration(migrations.Migration):
    dependencies = [("jobs", "0012_analysisresult_tutoring_library")]

    operations = [migrations.RunPython(ranks, scores)]
