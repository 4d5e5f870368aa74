"""Appending to the access log. Writes are recorded by signals (tessera.audit.signals); reads are
recorded where they happen — pages, API, downloads, tasks and reports — by calling these."""

from collections.abc import Iterable
from contextlib import nullcontext
from functools import cache

from django.apps import apps
from django.db import connections, router, transaction
from django.db.models import Model

from tessera.audit.context import Actor, current_actor
from tessera.audit.models import AuditEvent

Action = AuditEvent.Action


@cache
def audited_models() -> dict[type[Model], str]:
    """Every model that declares itself audited, under the name its events carry.

    An audited model says, beside its ORGANIZATION_LOOKUP, its `AUDIT_TYPE` (that name) and its
    `SUBJECT_LOOKUPS`: whose data a row is, as the path from it to its patient or student under
    that kind of person ("patient": "visit_key__encounter__patient"). So this app knows no
    other app's models, and a new model is audited by saying so where it is defined."""
    return {model: model.AUDIT_TYPE for model in apps.get_models() if hasattr(model, "AUDIT_TYPE")}


def is_audited(model: type[Model]) -> bool:
    return model in audited_models()


def record(
    obj: Model, *, action: str, actor: Actor | None = None, facts: tuple | None = None
) -> AuditEvent:
    """Log one object; `facts` are its `facts_of`, when they were read before it was deleted."""
    organization_id, subject = facts or facts_of(obj)
    return AuditEvent.objects.create(
        **_fields(obj, organization_id, subject, action=action, actor=actor or current_actor())
    )


def facts_of(obj: Model) -> tuple[int, str]:
    """The object's organization id and whose data it is ("patient:12"; "" for a cohort
    report), from the instance and its parents."""
    subject = next(
        (
            f"{kind}:{value}"
            for kind, path in type(obj).SUBJECT_LOOKUPS.items()
            if (value := _follow(obj, path))
        ),
        "",
    )
    return _follow(obj, obj.ORGANIZATION_LOOKUP), subject


def record_each(objects: Iterable[Model], *, action: str, actor: Actor | None = None) -> None:
    """One event per object (a list page, a cohort report's subjects), appended by one INSERT
    per APPEND_BATCH: two queries for a page however many objects it shows, and one where each
    object holds its own organization and subject (a patient does)."""
    objects = list(objects)
    if not objects:
        return
    actor = actor or current_actor()
    facts = _facts_of_each(objects)
    _append(
        [_fields(obj, *facts[obj.pk], action=action, actor=actor) for obj in objects],
        at=AuditEvent._meta.get_field("at").get_default(),
    )


def _facts_of_each(objects: list[Model]) -> dict:
    """pk → (organization id, subject) of objects of one model: read from the instances when
    the model's lookups are its own fields, else in one query."""
    model = type(objects[0])
    paths = model.SUBJECT_LOOKUPS
    if "__" not in "".join((model.ORGANIZATION_LOOKUP, *paths.values())):
        return {obj.pk: facts_of(obj) for obj in objects}
    rows = model.objects.filter(pk__in=[obj.pk for obj in objects]).values_list(
        "pk", model.ORGANIZATION_LOOKUP, *paths.values()
    )
    facts = {}
    for pk, organization_id, *subject_ids in rows:
        subject = next(
            (f"{kind}:{value}" for kind, value in zip(paths, subject_ids, strict=True) if value),
            "",
        )
        facts[pk] = (organization_id, subject)
    return facts


APPEND_BATCH = 500  # rows per INSERT statement


def _append(rows: list[dict], *, at) -> None:
    """Insert events (`_fields` dicts, all at `at`) without building model instances, one
    statement per APPEND_BATCH rows. In autocommit a statement is its own transaction, where
    bulk_create would open and commit one around it (two round trips more, on every list page);
    several statements go in one transaction. On PostgreSQL the rows travel as one array per
    column: a statement of a few parameters, which the driver parses once and keeps, where a
    VALUES list of a page's 550 it would parse anew on every request."""
    database = router.db_for_write(AuditEvent)
    connection = connections[database]
    fields = [AuditEvent._meta.get_field(name) for name in ("at", *rows[0])]
    quote = connection.ops.quote_name
    insert = (
        f"INSERT INTO {quote(AuditEvent._meta.db_table)} "
        f"({', '.join(quote(field.column) for field in fields)}) "
    )
    arrays = connection.vendor == "postgresql"
    if arrays:
        columns = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
        insert += f"SELECT * FROM unnest({columns})"
    placeholders = f"({', '.join(['%s'] * len(fields))})"
    batches = [rows[start : start + APPEND_BATCH] for start in range(0, len(rows), APPEND_BATCH)]
    prepared: dict[tuple[str, object], object] = {}  # a page's events share most values

    def prepare(field, value):
        key = (field.attname, value)
        if key not in prepared:
            prepared[key] = field.get_db_prep_save(value, connection)
        return prepared[key]

    together = (
        transaction.atomic(using=database, savepoint=False) if len(batches) > 1 else nullcontext()
    )
    with together, connection.cursor() as cursor:
        for batch in batches:
            values = [
                [
                    prepare(field, at if field.name == "at" else row[field.attname])
                    for field in fields
                ]
                for row in batch
            ]
            if arrays:
                cursor.execute(insert, [list(column) for column in zip(*values, strict=True)])
            else:
                statement = insert + "VALUES " + ", ".join([placeholders] * len(batch))
                cursor.execute(statement, [value for row in values for value in row])


def _fields(obj: Model, organization_id: int, subject: str, *, action: str, actor: Actor) -> dict:
    return {
        "organization_id": organization_id,
        "actor_id": actor.user_id,
        "actor_name": actor.name[:150],
        "channel": actor.channel,
        "action": action,
        "object_type": type(obj).AUDIT_TYPE,
        "object_id": str(obj.pk),
        "subject": subject,
        "address": actor.address,
        "via": actor.via,
    }


def _follow(obj: Model, path: str):
    """The id at the end of a lookup path (`visit_key__encounter__patient` → the patient's
    id), reading the instance's cached relations and foreign-key ids rather than the database
    where it can."""
    if path == "pk":
        return obj.pk
    *through, last = path.split("__")
    for name in through:
        obj = getattr(obj, name)
        if obj is None:
            return None
    return getattr(obj, f"{last}_id")
