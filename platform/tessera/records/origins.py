"""The way back to the PACS. De-identification (records.deidentify) replaces every UID of a
DICOM image with a stand-in and empties its accession number, so nothing in a stored file can
point back to the study it came from. Each image's originals are therefore kept beside it,
sealed (tessera.sealing: under the server's media encryption keys, else a key derived from the
de-identification key). Only an organization's admins may read them, and each read is
audited (records.selectors.pacs_origin)."""

import json
from dataclasses import asdict

from tessera.records.deidentify import DicomIdentity
from tessera.records.storage import StoredContentCorrupted
from tessera.sealing import SealBroken, seal, unseal

PURPOSE = b"pacs-origin"


def seal_identity(identity: DicomIdentity) -> str:
    return seal(json.dumps(asdict(identity)), purpose=PURPOSE)


def unseal_identity(sealed: str) -> DicomIdentity:
    """What `seal_identity` sealed. Raises StoredContentCorrupted when no key of this server
    opens it."""
    try:
        plain = unseal(sealed, purpose=PURPOSE)
    except SealBroken as error:
        raise StoredContentCorrupted(
            "a DICOM image's link to the PACS cannot be decrypted with this server's keys"
        ) from error
    return DicomIdentity(**json.loads(plain))
