"""Removes a stored file once no media asset refers to its content any more, after the deleting
transaction commits (a rolled-back delete keeps the file)."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from tessera.records.models import MediaAsset
from tessera.records.storage import content_store


@receiver(post_delete, sender=MediaAsset, dispatch_uid="records.remove_unreferenced_content")
def remove_unreferenced_content(sender, instance: MediaAsset, **kwargs) -> None:
    sha256 = instance.sha256

    def remove_if_unreferenced() -> None:
        if not MediaAsset.objects.filter(sha256=sha256).exists():
            content_store().delete(sha256)

    transaction.on_commit(remove_if_unreferenced)
