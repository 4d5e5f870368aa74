"""Appending to the access log. Writes are recorded by signals (tessera.audit.signals); reads are
recorded where they happen — pages, API, downloads, tasks and reports — by calling these."""

from collections.abc import Iterable
from functools import cache

from django.apps import apps
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
    """One event per object (a list page, a cohort report's subjects): two queries however
    many objects there are."""
    objects = list(objects)
    if not objects:
        return
    model = type(objects[0])
    paths = model.SUBJECT_LOOKUPS
    facts = {
        row[0]: row[1:]
        for row in model.objects.filter(pk__in=[obj.pk for obj in objects]).values_list(
            "pk", model.ORGANIZATION_LOOKUP, *paths.values()
        )
    }
    actor = actor or current_actor()
    events = []
    for obj in objects:
        organization_id, *subject_ids = facts[obj.pk]
        subject = next(
            (f"{kind}:{value}" for kind, value in zip(paths, subject_ids, strict=True) if value),
            "",
        )
        events.append(
            AuditEvent(**_fields(obj, organization_id, subject, action=action, actor=actor))
        )
    AuditEvent.objects.bulk_create(events, batch_size=500)


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
