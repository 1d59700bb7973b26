"""What WeChat pushes is small, flat XML. Refuse anything else before a parser expands it.

Order: the size cap, strict UTF-8, then a scan that refuses any markup declaration (``<!DOCTYPE``,
``<!ENTITY``, ``<!ELEMENT``, ``<!ATTLIST`` …) outside CDATA sections and comments. Only then does
defusedxml parse (with DTDs and entities forbidden as a second line), so billion-laughs and
external-entity payloads never reach a parser that would expand them. wechatpy (xmltodict) parses
only text that has passed here.

See 微信公众平台 · 接收普通消息:
https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html
"""

from __future__ import annotations

from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree as SafeET

from ..errors import BadInput, TooLarge

BODY_FIELD = "xml"


def check_size(body: bytes, limit: int) -> None:
    if len(body) > limit:
        raise TooLarge()


def guarded_text(body: bytes, limit: int) -> str:
    """The body as text, once it is known to be small, UTF-8 and free of markup declarations."""
    check_size(body, limit)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(BODY_FIELD) from None
    if declares_markup(text):
        raise BadInput(BODY_FIELD)
    return text


def declares_markup(text: str) -> bool:
    """True when ``<!`` opens anything but a CDATA section or a comment (or either is unclosed)."""
    i = 0
    while (j := text.find("<!", i)) != -1:
        if text.startswith("<![CDATA[", j):
            end = text.find("]]>", j + 9)
        elif text.startswith("<!--", j):
            end = text.find("-->", j + 4)
        else:
            return True
        if end == -1:
            return True
        i = end + 3
    return False


def parse_flat(body: bytes, limit: int) -> tuple[str, dict[str, str]]:
    """Guard, then parse: ``(text, {tag: text})`` for the children of the ``<xml>`` root.

    Nested children (a few events carry lists) appear with their own direct text, usually empty.
    Malformed XML, another root, or anything defusedxml forbids is :class:`BadInput`.
    """
    text = guarded_text(body, limit)
    try:
        root = SafeET.fromstring(text, forbid_dtd=True)
    except (ParseError, defusedxml.DefusedXmlException):
        raise BadInput(BODY_FIELD) from None
    if root.tag != "xml":
        raise BadInput(BODY_FIELD)
    return text, {child.tag: (child.text or "").strip() for child in root}
