"""The envelope of a push: its signature checked, its AES envelope opened, the reply sealed.

- 接入指南 (``signature`` over token, timestamp and nonce):
  https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Access_Overview.html
- 消息加解密 (plaintext, compatible and safe modes, ``msg_signature``):
  https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Message_encryption_and_decryption_instructions.html

wechatpy does the signatures and the AES envelope; this module decides what each failure means
(403 for a wrong signature, appid or stale timestamp, 400 for a malformed envelope) and which
fields count. Pure, no I/O; which mode a push must come in is :mod:`.callback`'s decision.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Mapping

from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import check_signature

from ..clock import Clock
from ..errors import BadInput, Forbidden
from .xml_guard import parse_flat

TIMESTAMP_WINDOW = 300  # seconds either side of our clock

_DECRYPT_ERRORS = (ValueError, TypeError, IndexError, struct.error)


def check_signed(token: str, query: Mapping[str, str], clock: Clock) -> None:
    """``signature`` holds for our token and ``timestamp`` is within :data:`TIMESTAMP_WINDOW`; else 403."""
    signature, timestamp, nonce = (query.get(k, "") for k in ("signature", "timestamp", "nonce"))
    well_formed = timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12
    if not (signature and nonce and well_formed and token):
        raise Forbidden()
    try:
        check_signature(token, signature, timestamp, nonce)
    except InvalidSignatureException:
        raise Forbidden() from None
    if abs(clock.time() - int(timestamp)) > TIMESTAMP_WINDOW:
        raise Forbidden()


def open_sealed(
    crypto: WeChatCrypto, query: Mapping[str, str], fields: dict[str, str], max_body: int
) -> dict[str, str]:
    """The decrypted fields of a compatible- or safe-mode body (its plaintext fields are dropped),
    once ``msg_signature`` and the appid hold."""
    encrypt = fields.get("Encrypt")
    if not encrypt:
        raise BadInput("Encrypt")
    try:
        # A dict, so wechatpy never parses the outer body itself; it checks msg_signature and appid.
        inner = crypto.decrypt_message({"Encrypt": encrypt}, query["msg_signature"], query["timestamp"], query["nonce"])
    except (InvalidSignatureException, InvalidAppIdException):
        raise Forbidden() from None
    except _DECRYPT_ERRORS:
        raise BadInput("Encrypt") from None
    return parse_flat(inner, max_body)


def plaintext_half(fields: dict[str, str]) -> dict[str, str]:
    """No key configured yet, and the platform already in compatible mode (the step before safe
    mode that the README prescribes): the body's plaintext fields, trusted as in plaintext mode, and
    a plaintext reply, which compatible mode accepts. A safe-mode body has none: refused."""
    plain = {k: v for k, v in fields.items() if k != "Encrypt"}
    if not plain.get("MsgType"):
        raise Forbidden()
    return plain


def seal(crypto: WeChatCrypto, inner: str, clock: Clock) -> str:
    """The safe-mode envelope, with our own nonce (nothing from the request is echoed)."""
    nonce = str(secrets.randbelow(10**10))
    return crypto.encrypt_message(inner, nonce, str(int(clock.time())))
