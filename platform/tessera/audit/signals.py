"""Every write of an audited object is logged, whoever makes it (page, API, admin, task);
tasks act under their own name."""

from celery.signals import task_postrun, task_prerun
from django.db.models.signals import post_delete, post_save, pre_delete

from tessera.audit import services
from tessera.audit.context import Actor, Channel, enter, leave
from tessera.audit.models import AuditEvent


def _saved(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if raw:
        return  # loading fixtures is not someone writing a record
    action = AuditEvent.Action.CREATE if created else AuditEvent.Action.UPDATE
    services.record(instance, action=action)


def _deleting(sender, instance, **kwargs) -> None:
    # A cascade may delete the parents before this object's post_delete: read whose it is now.
    instance._audit_facts = services.facts_of(instance)


def _deleted(sender, instance, **kwargs) -> None:
    facts = getattr(instance, "_audit_facts", None)
    services.record(instance, action=AuditEvent.Action.DELETE, facts=facts)


for _model in services.audited_models():
    post_save.connect(_saved, sender=_model, dispatch_uid=f"audit.saved.{_model.__name__}")
    pre_delete.connect(_deleting, sender=_model, dispatch_uid=f"audit.deleting.{_model.__name__}")
    post_delete.connect(_deleted, sender=_model, dispatch_uid=f"audit.deleted.{_model.__name__}")

_task_tokens: dict[str, object] = {}


@task_prerun.connect(dispatch_uid="audit.task_started")
def _task_started(task_id: str, task, **kwargs) -> None:
    actor = Actor(name=f"task {task.name}"[:150], channel=Channel.TASK, via=task.name[:200])
    _task_tokens[task_id] = enter(actor)


@task_postrun.connect(dispatch_uid="audit.task_finished")
def _task_finished(task_id: str, **kwargs) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        leave(token)
