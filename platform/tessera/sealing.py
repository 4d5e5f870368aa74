"""Small secrets kept in the database, sealed with Fernet: under the server's media encryption
keys where it has them (the first one seals, so they rotate as the files do), else under a key
derived for each purpose from the de-identification key, which every server has. A purpose
keeps one kind of secret from opening as another."""

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SealBroken(Exception):
    """No key of this server opens it (the keys changed, or it was tampered with)."""


def seal(text: str, *, purpose: bytes) -> str:
    return _cipher(purpose).encrypt(text.encode()).decode("ascii")


def unseal(sealed: str, *, purpose: bytes) -> str:
    try:
        return _cipher(purpose).decrypt(sealed.encode("ascii")).decode()
    except InvalidToken as error:
        raise SealBroken from error


def _cipher(purpose: bytes) -> MultiFernet:
    derived = hmac.new(
        settings.TESSERA_DEIDENTIFICATION_KEY.encode(), purpose, hashlib.sha256
    ).digest()
    keys = [*settings.TESSERA_MEDIA_ENCRYPTION_KEYS, base64.urlsafe_b64encode(derived)]
    return MultiFernet([Fernet(key) for key in keys])
