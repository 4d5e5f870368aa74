"""The way back to the PACS. De-identification (records.deidentify) replaces every UID of a
DICOM image with a stand-in and empties its accession number, so nothing in a stored file can
point back to the study it came from. Each image's originals are therefore kept beside it,
sealed with Fernet: under the server's media encryption keys where it has them (the first one
seals, so they rotate as the files do), else under a key derived from the de-identification
key, which every server has. Only an organization's admins may read them, and each read is
audited (records.selectors.pacs_origin)."""

import base64
import hashlib
import hmac
import json
from dataclasses import asdict

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from tessera.records.deidentify import DicomIdentity
from tessera.records.storage import StoredContentCorrupted


def seal_identity(identity: DicomIdentity) -> str:
    return _cipher().encrypt(json.dumps(asdict(identity)).encode()).decode("ascii")


def unseal_identity(sealed: str) -> DicomIdentity:
    """What `seal_identity` sealed. Raises StoredContentCorrupted when no key of this server
    opens it."""
    try:
        plain = _cipher().decrypt(sealed.encode("ascii"))
    except InvalidToken as error:
        raise StoredContentCorrupted(
            "a DICOM image's link to the PACS cannot be decrypted with this server's keys"
        ) from error
    return DicomIdentity(**json.loads(plain))


def _cipher() -> MultiFernet:
    derived = hmac.new(
        settings.TESSERA_DEIDENTIFICATION_KEY.encode(), b"pacs-origin", hashlib.sha256
    ).digest()
    keys = [*settings.TESSERA_MEDIA_ENCRYPTION_KEYS, base64.urlsafe_b64encode(derived)]
    return MultiFernet([Fernet(key) for key in keys])
