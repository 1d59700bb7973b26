"""What WeChat pushes is small, flat XML. Refuse anything else before a parser expands it.

Order: the size cap, strict UTF-8, then a scan that refuses any markup declaration (``<!DOCTYPE``,
``<!ENTITY``, ``<!ELEMENT``, ``<!ATTLIST`` …) outside CDATA sections and comments. Only then does
expat parse, with handlers that refuse a DTD, entity declarations and external entities as a second
line (what defusedxml does), so billion-laughs and external-entity payloads never reach a parser
that would expand them. The parse collects the root's children straight into a dict: one pass, no
element tree.

See 微信公众平台 · 接收普通消息:
https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html
"""

from __future__ import annotations

from typing import NoReturn
from xml.parsers import expat

from ..errors import BadInput, TooLarge

BODY_FIELD = "xml"


def check_size(body: bytes | str, limit: int) -> None:
    if len(body) > limit:
        raise TooLarge()


def guarded_text(body: bytes | str, limit: int) -> str:
    """The body as text, once it is known to be small, UTF-8 and free of markup declarations.
    Text already decoded (a decrypted message) is measured in characters."""
    check_size(body, limit)
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
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


def parse_flat(body: bytes | str, limit: int) -> dict[str, str]:
    """Guard, then parse: ``{tag: text}`` for the children of the ``<xml>`` root.

    Nested children (a few events carry lists) appear with their own direct text, usually empty.
    Malformed XML, another root, or a DTD or entity slipping past the guard is :class:`BadInput`.
    """
    text = guarded_text(body, limit)
    flat = _Flat()
    try:
        flat.parse(text)  # str: expat reads it as UTF-8 whatever the XML declaration says
    except (expat.ExpatError, _Refused):
        raise BadInput(BODY_FIELD) from None
    if flat.root != "xml":
        raise BadInput(BODY_FIELD)
    return flat.fields


class _Refused(Exception):
    pass


def _refuse(*_: object) -> NoReturn:
    raise _Refused()


class _Flat:
    """expat callbacks filling ``fields``; depth 1 is the root, depth 2 its children."""

    __slots__ = ("child", "collecting", "depth", "fields", "parts", "root")

    def __init__(self) -> None:
        self.depth = 0
        self.root = ""
        self.fields: dict[str, str] = {}
        self.child = ""
        self.parts: list[str] = []
        self.collecting = False  # only the child's direct text, before any grandchild

    def parse(self, text: str) -> None:
        p = expat.ParserCreate()
        p.StartDoctypeDeclHandler = _refuse
        p.EntityDeclHandler = _refuse
        p.UnparsedEntityDeclHandler = _refuse
        p.ExternalEntityRefHandler = _refuse
        p.StartElementHandler = self.start
        p.EndElementHandler = self.end
        p.CharacterDataHandler = self.data
        p.buffer_text = True
        p.Parse(text, True)

    def start(self, tag: str, _attrs: object) -> None:
        self.depth += 1
        if self.depth == 2:
            self.child, self.parts, self.collecting = tag, [], True
        elif self.depth == 1:
            self.root = tag
        else:
            self.collecting = False

    def end(self, _tag: str) -> None:
        if self.depth == 2:
            self.fields[self.child] = "".join(self.parts).strip()
        self.depth -= 1

    def data(self, text: str) -> None:
        if self.depth == 2 and self.collecting:
            self.parts.append(text)
