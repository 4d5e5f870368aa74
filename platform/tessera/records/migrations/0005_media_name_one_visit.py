"""Media name their visit by its key alone (0004 filled it in)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0004_visit_and_subject_keys"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="mediaasset",
            name="encounter",
        ),
        migrations.RemoveField(
            model_name="mediaasset",
            name="learning_session",
        ),
        migrations.AlterField(
            model_name="mediaasset",
            name="visit_key",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="media",
                to="records.visitkey",
            ),
        ),
    ]


# The database refuses a file that does not fit its visit (a learner's text on an encounter),
# as the check constraint on the pair of keys did, whatever code writes the row. The kinds of
# an encounter's files, as records.models.ENCOUNTER_MEDIA said when this was written; every
# other kind belongs to a learning session. (SQLite drops a table's triggers when a migration
# rebuilds the table: tests/unit/test_records.py finds out if one does.)
ENCOUNTER_MEDIA = "('dicom', 'clinical_note', 'speech')"
FITS = (
    f"(NEW.kind IN {ENCOUNTER_MEDIA}) = "
    "(SELECT encounter_id IS NOT NULL FROM records_visitkey WHERE id = NEW.visit_key_id)"
)
REFUSAL = "a file of this kind does not belong to this kind of visit"
POSTGRESQL_GUARD = f"""
CREATE FUNCTION media_kind_fits_its_visit() RETURNS trigger AS $$
BEGIN
    IF {FITS} IS NOT TRUE THEN
        RAISE EXCEPTION '{REFUSAL}' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER media_kind_fits_its_visit BEFORE INSERT OR UPDATE OF kind, visit_key_id
    ON records_mediaasset FOR EACH ROW EXECUTE FUNCTION media_kind_fits_its_visit();
"""
POSTGRESQL_UNGUARD = """
DROP TRIGGER IF EXISTS media_kind_fits_its_visit ON records_mediaasset;
DROP FUNCTION IF EXISTS media_kind_fits_its_visit();
"""
SQLITE_GUARD = [
    f"""
CREATE TRIGGER media_kind_fits_its_visit_{event} BEFORE {event} ON records_mediaasset
WHEN ({FITS}) IS NOT 1
BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END;
"""
    for event in ("INSERT", "UPDATE")
]
SQLITE_UNGUARD = [
    f"DROP TRIGGER IF EXISTS media_kind_fits_its_visit_{event};" for event in ("INSERT", "UPDATE")
]


def guard(apps, schema_editor) -> None:
    _run(schema_editor, [POSTGRESQL_GUARD], SQLITE_GUARD)


def unguard(apps, schema_editor) -> None:
    _run(schema_editor, [POSTGRESQL_UNGUARD], SQLITE_UNGUARD)


def _run(schema_editor, postgresql: list[str], sqlite: list[str]) -> None:
    vendor = schema_editor.connection.vendor
    for statement in {"postgresql": postgresql, "sqlite": sqlite}.get(vendor, []):
        schema_editor.execute(statement)


Migration.operations.append(migrations.RunPython(guard, unguard))
