"""Removes stored files once no media asset refers to their content any more, after the deleting
transaction commits (a rolled-back delete keeps the files)."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from tessera.records.models import MediaAsset
from tessera.records.selectors import stored_content_in_use
from tessera.records.storage import content_store


@receiver(post_delete, sender=MediaAsset, dispatch_uid="records.remove_unreferenced_content")
def remove_unreferenced_content(sender, instance: MediaAsset, **kwargs) -> None:
    files = [(instance.sha256, instance.encrypted)]
    if instance.original_sha256:
        files.append((instance.original_sha256, True))

    def remove_if_unreferenced() -> None:
        for sha256, encrypted in files:
            if not stored_content_in_use(sha256, encrypted=encrypted):
                content_store().delete(sha256, encrypted=encrypted)

    transaction.on_commit(remove_if_unreferenced)
