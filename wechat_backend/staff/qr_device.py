"""What the member's phone is told about the desktop that asked for a QR login: enough to tell
one's own computer from someone else's, nothing that names a person — when the login page was
opened (Beijing time), the first half of its address (``123.45.*.*``) and its browser family
(``Chrome / Windows``). Made once, when the QR page is created; the full address and the
User-Agent are never kept. Pure functions: no I/O.

The browser family comes from ua-parser (the uap-core rules, which know the browsers used in China:
QQ Browser, Sogou, 360, UC…). The User-Agent is the asker's own text (some rules copy a word of it
into the family), so each part is cut to three words of Latin letters, digits and ``._-``, 24
characters at most: a forged User-Agent cannot write a sentence on the member's confirm page. It can
still claim to be any browser; the address half is the part the asker cannot choose.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass

from ua_parser import parse_os, parse_user_agent

from ..clock import LOCAL_ZONE

UNKNOWN_BROWSER = "未知浏览器"
UNKNOWN_ADDRESS = "未知"
_UA_MAX = 512  # a longer User-Agent is someone's game: its head is enough for a family
_PART_MAX = 24
_PART_WORDS = 3
_NOT_NAME = re.compile(r"[^A-Za-z0-9 ._-]")
_RENAMED = {"Mac OS X": "macOS"}


@dataclass(frozen=True)
class Desktop:
    """The desktop that opened the QR page: when (unix seconds, the service clock), the address
    cut to its first half, the browser family."""

    opened_at: float
    ip: str
    browser: str

    @property
    def opened_text(self) -> str:
        """``5月3日 14:05``, in Beijing time."""
        at = dt.datetime.fromtimestamp(self.opened_at, LOCAL_ZONE)
        return f"{at.month}月{at.day}日 {at:%H:%M}"


def partial_ip(address: str | None) -> str:
    """The first two octets of an IPv4 address (``123.45.*.*``), the first two groups of an IPv6
    one (``2408:8207:*``) — never more; ``未知`` for anything else."""
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return UNKNOWN_ADDRESS
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        a, b, _, _ = str(ip).split(".")
        return f"{a}.{b}.*.*"
    groups = ip.exploded.split(":")[:2]
    return ":".join(format(int(g, 16), "x") for g in groups) + ":*"


def browser_family(user_agent: str | None) -> str:
    """``Chrome / Windows``, ``Edge / Windows``, ``Safari / macOS``, ``QQ Browser / Windows``…;
    ``未知浏览器`` when the rules know neither. No version, no device. (The first call loads the
    rules, about half a second: call it off the event loop.)"""
    ua = (user_agent or "")[:_UA_MAX]
    agent, system = parse_user_agent(ua), parse_os(ua)
    name = _part(agent.family if agent else "")
    if not name:
        return UNKNOWN_BROWSER
    os_name = _part(system.family if system else "")
    return f"{name} / {os_name}" if os_name else name


def _part(family: str) -> str:
    if family in ("", "Other"):
        return ""
    words = _NOT_NAME.sub("", family).split()[:_PART_WORDS]
    return _RENAMED.get(family) or " ".join(words)[:_PART_MAX].strip()
