"""WeChat's published sample values and an independent implementation of the message crypto.

The sample is Tencent's 2014 WXBizMsgCrypt demo (token ``spamtest``), as quoted in wechatpy's and
other SDKs' tests. The AES code below is written from the platform's description with
``cryptography`` directly, so tests check wechatpy's output against something that is not wechatpy:
key = base64(EncodingAESKey + "="), IV = key[:16], AES-256-CBC, PKCS#7 to 32-byte blocks,
plaintext = 16 random bytes + 4-byte big-endian length + XML + appid.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import struct
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wechat_backend.clock import FixedClock

TOKEN = "spamtest"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wx2c2769f8efd9abc2"
TIMESTAMP = "1409735669"
NONCE = "1320562132"
MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
SIGNATURE = "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"  # sha1 of sorted token, timestamp, nonce
OPENID = "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJ"
    "F9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg"
    "3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue"
    "1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
# The sample's from_xml: compatible mode, plaintext fields and <Encrypt> in one body.
SAMPLE_BODY = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]>"
    "</FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]>"
    f"</Content><MsgId>6054768590064713728</MsgId><Encrypt><![CDATA[{ENCRYPT}]]></Encrypt></xml>"
)
SAMPLE_QUERY = {
    "signature": SIGNATURE,
    "timestamp": TIMESTAMP,
    "nonce": NONCE,
    "openid": OPENID,
    "encrypt_type": "aes",
    "msg_signature": MSG_SIGNATURE,
}
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE xml [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1409735668</CreateTime>
<MsgType>text</MsgType><Content>&lol3;</Content><MsgId>1</MsgId></xml>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1409735668</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>2</MsgId></xml>"""
WECHAT_SETTINGS = {"token": TOKEN, "encoding_aes_key": AES_KEY, "app_id": APP_ID}
FIXTURES = Path(__file__).parent / "fixtures" / "wechat"


def sample_clock() -> FixedClock:
    """Half a minute after the sample's timestamp."""
    return FixedClock(dt.datetime.fromtimestamp(int(TIMESTAMP) + 30, dt.UTC))


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _cipher() -> Cipher[modes.CBC]:
    key = base64.b64decode(AES_KEY + "=")
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def encrypt(xml: str, app_id: str = APP_ID) -> str:
    body = xml.encode()
    plain = os.urandom(16) + struct.pack(">I", len(body)) + body + app_id.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    enc = _cipher().encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def decrypt(encrypted: str, app_id: str = APP_ID) -> str:
    dec = _cipher().decryptor()
    plain = dec.update(base64.b64decode(encrypted)) + dec.finalize()
    pad = plain[-1]
    assert 1 <= pad <= 32 and plain[-pad:] == bytes([pad]) * pad, "bad PKCS#7 padding"
    content = plain[16:-pad]
    (length,) = struct.unpack(">I", content[:4])
    assert content[4 + length :].decode() == app_id, "appid at the end does not match"
    return content[4 : 4 + length].decode()


def element(xml: str, tag: str) -> str:
    m = re.search(rf"<{tag}>(?:<!\[CDATA\[(.*?)\]\]>|([^<]*))</{tag}>", xml, re.S)
    assert m, f"no <{tag}> in reply"
    return m.group(1) if m.group(1) is not None else m.group(2)


def open_envelope(reply: str) -> str:
    """The inner XML of a safe-mode reply, after checking its MsgSignature independently."""
    encrypted = element(reply, "Encrypt")
    expected = sign(TOKEN, element(reply, "TimeStamp"), element(reply, "Nonce"), encrypted)
    assert element(reply, "MsgSignature") == expected
    return decrypt(encrypted)


def fixture(name: str, **fields: str) -> str:
    """A recorded push from tests/fixtures/wechat/, with some element values replaced."""
    xml = (FIXTURES / f"{name}.xml").read_text(encoding="utf-8")
    for tag, value in fields.items():
        xml, n = re.subn(
            rf"<{tag}>(?:<!\[CDATA\[.*?\]\]>|[^<]*)</{tag}>", f"<{tag}><![CDATA[{value}]]></{tag}>", xml, flags=re.S
        )
        assert n == 1, f"fixture {name} has no <{tag}>"
    return xml


def plain_query(timestamp: str = TIMESTAMP, nonce: str = NONCE) -> dict[str, str]:
    return {"signature": sign(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, "openid": OPENID}


def safe_request(xml: str, timestamp: str = TIMESTAMP, nonce: str = NONCE) -> tuple[dict[str, str], bytes]:
    """Query and body as WeChat sends a push in safe mode."""
    encrypted = encrypt(xml)
    query = {
        **plain_query(timestamp, nonce),
        "encrypt_type": "aes",
        "msg_signature": sign(TOKEN, timestamp, nonce, encrypted),
    }
    body = f"<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    return query, body.encode()
