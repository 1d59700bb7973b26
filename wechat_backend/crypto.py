"""Field encryption at rest with the national algorithms: SM4-GCM and HMAC-SM3.

* :meth:`KeyRing.seal` encrypts one row's personal fields together (one SM4-GCM call per row,
  not per field) and binds the ciphertext to the row's stable identity (its upstream id) as
  associated data, so a ciphertext copied onto another row does not decrypt.
* Each ciphertext starts with its key id, so old keys keep decrypting while ``keys rotate``
  re-encrypts with the active one.
* :meth:`KeyRing.blind_index` is a truncated HMAC-SM3 of a normalised value under a per-purpose
  key derived from ``blind_index_key``. Truncation is deliberate: equal values collide with a few
  others, so the index narrows a lookup to a small candidate set (decrypted and compared in the
  application) without telling which rows share a value.

Wire format of a sealed value::

    0x01 | len(key_id) | key_id (ascii) | nonce (12) | ciphertext | tag (16)
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .config import SecuritySettings

FORMAT_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16


class DecryptError(Exception):
    """A ciphertext did not authenticate (wrong key, wrong row, or tampered). Carries no data."""


def sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, hashes.SM3())
    h.update(data)
    return h.finalize()


def sm4_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    return enc.update(plaintext) + enc.finalize() + enc.tag


def sm4_gcm_decrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
    if len(data) < TAG_BYTES:
        raise DecryptError("ciphertext too short")
    dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, data[-TAG_BYTES:])).decryptor()
    dec.authenticate_additional_data(aad)
    try:
        return dec.update(data[:-TAG_BYTES]) + dec.finalize()
    except InvalidTag:
        raise DecryptError("authentication failed") from None


def key_id_of(blob: bytes) -> str:
    if len(blob) < 2 or blob[0] != FORMAT_VERSION:
        raise DecryptError("unknown ciphertext format")
    return blob[2 : 2 + blob[1]].decode("ascii")


@dataclass(frozen=True)
class KeyRing:
    keys: Mapping[str, bytes]
    active_key: str
    blind_index_key: bytes
    blind_index_bits: int = 16

    @classmethod
    def from_settings(cls, s: SecuritySettings) -> KeyRing:
        return cls(
            keys={kid: base64.b64decode(v) for kid, v in s.keys.items()},
            active_key=s.active_key,
            blind_index_key=base64.b64decode(s.blind_index_key),
            blind_index_bits=s.blind_index_bits,
        )

    # ------------------------------------------------------------------ encryption

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        kid = self.active_key.encode("ascii")
        nonce = os.urandom(NONCE_BYTES)
        body = sm4_gcm_encrypt(self.keys[self.active_key], nonce, plaintext, aad)
        return bytes((FORMAT_VERSION, len(kid))) + kid + nonce + body

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        kid = key_id_of(blob)
        key = self.keys.get(kid)
        if key is None:
            raise DecryptError(f"key id {kid!r} is not configured")
        start = 2 + len(kid)
        nonce = blob[start : start + NONCE_BYTES]
        return sm4_gcm_decrypt(key, nonce, blob[start + NONCE_BYTES :], aad)

    def seal(self, fields: Mapping[str, Any], aad: str) -> bytes:
        """Encrypt a row's personal fields in one call (compact JSON inside)."""
        data = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
        return self.encrypt(data, aad.encode())

    def seal_json(self, text: str, aad: str) -> bytes:
        """Encrypt an already-serialised JSON object (the import builds it once for several uses)."""
        return self.encrypt(text.encode(), aad.encode())

    def open(self, blob: bytes, aad: str) -> dict[str, Any]:
        return json.loads(self.decrypt(blob, aad.encode()))

    def needs_rotation(self, blob: bytes) -> bool:
        return key_id_of(blob) != self.active_key

    # ------------------------------------------------------------------ blind indexes

    def _purpose_key(self, purpose: str) -> hmac.HMAC:
        cache = self.__dict__.setdefault("_purpose_cache", {})
        proto = cache.get(purpose)
        if proto is None:
            sub = hmac_sm3(self.blind_index_key, b"wb-blind-index:" + purpose.encode())
            proto = cache[purpose] = hmac.HMAC(sub, hashes.SM3())
        return proto

    def blind_index(self, purpose: str, value: str) -> int:
        """Truncated HMAC-SM3 of an already-normalised value, as a non-negative integer."""
        h = self._purpose_key(purpose).copy()
        h.update(value.encode())
        full = int.from_bytes(h.finalize()[:8], "big")
        return full >> (64 - self.blind_index_bits)

    def mac(self, purpose: str, value: str) -> bytes:
        """Full-length keyed HMAC-SM3 (for one-time codes and rate-limit keys: never stored in clear)."""
        h = self._purpose_key(purpose).copy()
        h.update(value.encode())
        return h.finalize()

    @property
    def blind_fingerprint(self) -> str:
        """Names the blind-index key and width, so ``keys rotate`` can tell stale indexes."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            tag = hmac_sm3(self.blind_index_key, b"wb-blind-index-fingerprint").hex()[:8]
            cached = self.__dict__["_fingerprint"] = f"{tag}{self.blind_index_bits:02d}"
        return cached


def planned_blind_index_bits(rows: int) -> tuple[int, int]:
    """The range of index widths L for ``rows`` values such that 2 <= rows / 2**L < sqrt(rows):
    enough coincidences to hide equal values, few enough to keep lookups cheap."""
    low = high = None
    for bits in range(1, 64):
        coincidences = rows / 2**bits
        if 2 <= coincidences < rows**0.5:
            low = bits if low is None else low
            high = bits
    if low is None or high is None:
        raise ValueError("too few rows for a truncated index")
    return low, high
