"""Reads for records that more than one room needs."""

from django.db.models import Q

from tessera.records.models import MediaAsset


def stored_content_in_use(sha256: str, *, encrypted: bool) -> bool:
    """Whether a media row still refers to this stored file (as its content, or as its kept
    original, which is always encrypted)."""
    refers = Q(sha256=sha256, encrypted=encrypted)
    if encrypted:
        refers |= Q(original_sha256=sha256)
    return MediaAsset.objects.filter(refers).exists()
