"""wechatpy's message encryption (the AES envelope of safe and compatible modes), built once.

wechatpy builds a cipher per message and draws the 16 random bytes in front of each message from
``random``; this keeps one cipher and uses ``secrets``, through the extension point wechatpy's own
enterprise ``WeChatCrypto`` uses. The envelope itself stays wechatpy's.
"""

from __future__ import annotations

import secrets
from typing import Any

from wechatpy.crypto import PrpCrypto, WeChatCrypto

from ..config import ConfigError, Settings


class _PrpCrypto(PrpCrypto):
    """wechatpy's AES envelope, the 16 random bytes in front of each message drawn from ``secrets``
    (wechatpy uses ``random.sample``)."""

    def get_random_string(self) -> str:
        return secrets.token_hex(8)


class _WeChatCrypto(WeChatCrypto):
    """wechatpy's WeChatCrypto with one cipher kept for every message (wechatpy builds one per
    message), extended as wechatpy's own enterprise ``WeChatCrypto`` is: its own ``crypto_class``."""

    def __init__(self, token: str, encoding_aes_key: str, app_id: str) -> None:
        super().__init__(token, encoding_aes_key, app_id)
        self._prp = _PrpCrypto(self.key)

    def _prp_for(self, _key: bytes) -> _PrpCrypto:
        return self._prp

    def encrypt_message(self, msg: str, nonce: str, timestamp: str | None = None) -> str:
        return self._encrypt_message(msg, nonce, timestamp, self._prp_for)

    def decrypt_message(self, msg: Any, signature: str, timestamp: str, nonce: str) -> str:
        return self._decrypt_message(msg, signature, timestamp, nonce, self._prp_for)


def message_crypto(settings: Settings) -> WeChatCrypto | None:
    w = settings.wechat
    if not w.encoding_aes_key:
        return None  # plaintext mode only; safe-mode pushes are refused
    try:
        return _WeChatCrypto(w.token, w.encoding_aes_key, w.app_id)
    except (ValueError, AssertionError):
        raise ConfigError("[wechat] encoding_aes_key 应为公众平台给出的 43 位字符") from None
