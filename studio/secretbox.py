"""Secrets the studio must read back (multistream target keys), encrypted at
rest with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`).

The keys come from STUDIO_TARGET_KEYS: the first encrypts, every one decrypts
(MultiFernet), so a key can be rotated by putting a new one first; `flask
secrets reseal` then seals every stored secret with it, and the old key can
go. Without it, one key is derived from SECRET_KEY (HKDF-SHA256), which ties the stored
secrets to that setting: production sets STUDIO_TARGET_KEYS (the derived key
then comes last, opening what it sealed until `secrets reseal`).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["InvalidToken", "SecretBox", "from_config"]


class SecretBox:
    """Encrypts and decrypts short secrets."""

    def __init__(self, keys: Sequence[str]):
        if not keys:
            raise ValueError("no encryption key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def seal(self, secret: str) -> bytes:
        """The secret, encrypted and authenticated."""
        return self._fernet.encrypt(secret.encode())

    def open(self, sealed: bytes) -> str:
        """The secret back; raises InvalidToken if no key opens it."""
        return self._fernet.decrypt(bytes(sealed)).decode()

    def reseal(self, sealed: bytes) -> bytes:
        """The same secret sealed with the first key (after a rotation);
        raises InvalidToken if no key opens it."""
        return self._fernet.rotate(bytes(sealed))


@functools.lru_cache(maxsize=4)
def derived_key(secret_key: str) -> str:
    """A Fernet key derived from SECRET_KEY (for installations without
    TARGET_KEYS); derived once per secret key and process."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"studio target keys")
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())).decode()


def from_config(config: Mapping) -> SecretBox:
    """The box of the app's TARGET_KEYS, then the key derived from SECRET_KEY
    (the only one without TARGET_KEYS; after them it only opens what was
    sealed before they were set, until `secrets reseal`); raises ValueError
    when neither is set."""
    keys = list(config.get("TARGET_KEYS") or [])
    if config.get("SECRET_KEY"):
        keys.append(derived_key(config["SECRET_KEY"]))
    return SecretBox(keys)
