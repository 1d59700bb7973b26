"""Which inbox a question goes to. Pure.

The archive's institution (asked from an archive page, or — by message — the person's own archive,
else the first they bound); else the institution whose QR code the asker followed through; else
the city's inbox (no county, no institution: only city staff see it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ARCHIVE, QR, CITY = "archive", "qr", "city"
PAGE, MESSAGE = "page", "message"


@dataclass(frozen=True)
class BoundArchive:
    """An archive the asker bound, with where it belongs."""

    id: int
    county_code: str
    institution_code: str
    relation: str = "self"
    public_id: str = ""


@dataclass(frozen=True)
class Institution:
    code: str
    county_code: str


@dataclass(frozen=True)
class Route:
    route: str  # archive, qr, city
    county_code: str | None
    institution_code: str | None
    archive_id: int | None = None


def pick_archive(bound: Sequence[BoundArchive]) -> BoundArchive | None:
    """For a question that names no archive: the one bound as 本人, else the first bound."""
    own = [b for b in bound if b.relation == "self"]
    return (own or list(bound) or [None])[0]


def route_question(archive: BoundArchive | None, scene: Institution | None) -> Route:
    if archive is not None:
        return Route(ARCHIVE, archive.county_code, archive.institution_code, archive.id)
    if scene is not None:
        return Route(QR, scene.county_code, scene.code)
    return Route(CITY, None, None)
