"""The generator: residents of 聊城市 and their service records as ingest-format objects.

File order is the ingest order: every `institution`, then each `archive` followed by its
`record`s (oldest first), so a record's archive is always known when the record arrives.
Everything random comes from one `random.Random(seed)` and one Faker seeded per instance; no
global random state and no set iteration reach the output, so a seed and a day fix the bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

from faker import Faker

from wechat_backend.seed import children, exams, followups, maternal, outpatient, programmes, sensitive
from wechat_backend.seed.basic_info import basic_info
from wechat_backend.seed.names import NamePool
from wechat_backend.seed.people import FORCEABLE, Person, PersonFactory
from wechat_backend.seed.places import build_institutions, institution_line, institution_weights
from wechat_backend.seed.records import Draft

# Every file of this many archives or more is guaranteed one archive of each FORCEABLE trait
# (a sensitive programme, a newborn without 身份证号, each kind of planted sensitive detail).
GUARANTEE_FROM = 300

_BUILDERS = (
    followups.hypertension,
    followups.diabetes,
    sensitive.severe_mental,
    sensitive.tuberculosis,
    exams.elderly,
    exams.health_exam,
    maternal.prenatal,
    maternal.postpartum,
    children.newborn,
    children.checks,
    outpatient.outpatient,
)
_PROGRESS_EVERY = 250
_CHINA = dt.timezone(dt.timedelta(hours=8))  # Asia/Shanghai has had no DST since 1991

# One encoder for every line: json.dumps would build a new one per call with these options.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def default_today() -> dt.date:
    """Today in China: dates and ages are in Asia/Shanghai whatever the machine's zone."""
    return dt.datetime.now(_CHINA).date()


class _Run:
    def __init__(self, archives: int, seed: int, today: dt.date) -> None:
        self.archives, self.seed, self.today = archives, seed, today
        self.rng = random.Random(seed)
        fake = Faker("zh_CN")
        fake.seed_instance(seed)
        self.names = NamePool(fake, self.rng)
        self.institutions = build_institutions()
        self.factory = PersonFactory(
            self.rng, self.names, self.institutions, institution_weights(self.institutions), today
        )
        self.doctors = {
            inst.code: [
                self.names.full(self.rng.choice("12"), self.rng.randint(1965, 1998))
                for _ in range(self.rng.randint(4, 8))
            ]
            for inst in self.institutions
        }
        self.forced: dict[int, str] = {}
        if archives >= GUARANTEE_FROM:
            slots = self.rng.sample(range(GUARANTEE_FROM), len(FORCEABLE))
            self.forced = dict(zip(slots, FORCEABLE, strict=True))

    def institution_lines(self) -> list[dict]:
        return [institution_line(inst) for inst in self.institutions]

    def archive_lines(self) -> Iterator[tuple[dict, list[dict]]]:
        """Each archive with its records; only one archive is ever held in memory."""
        rng, today = self.rng, self.today
        for index in range(self.archives):
            force = self.forced.get(index)
            p = self.factory.make(index, force)
            programmes.assign(p, rng, today, force)
            if p.has("maternal") and p.contact_phone is None:  # the husband
                p.contact_name = self.names.full("1", p.birth.year - rng.randint(0, 5))
                p.contact_phone = self.factory.ids.phone()
            doctors = self.doctors[p.institution.code]
            family_doctor = rng.choice(doctors)
            archive = self._archive(p, family_doctor)
            drafts: list[Draft] = []
            for build in _BUILDERS:
                drafts.extend(build(p, rng, today))
            drafts.sort(key=lambda d: d.date)  # stable: same-day records keep builder order
            archive["filed_on"] = _filed_on(p, drafts)
            records = [
                self._record(
                    p, archive["upstream_id"], n, draft, family_doctor if rng.random() < 0.7 else rng.choice(doctors)
                )
                for n, draft in enumerate(drafts, start=1)
            ]
            yield archive, records

    def _archive(self, p: Person, family_doctor: str) -> dict:
        rng = self.rng
        return {
            "type": "archive",
            "upstream_id": f"arc-s{self.seed}-{p.index:07d}",
            "version": 1,
            "archive_no": p.archive_no,
            "institution_code": p.institution.code,
            "name": p.name,
            "id_number": p.id_number,
            "gender": p.sex,
            "birth_date": p.birth.isoformat(),
            "status": p.status,
            "open_to_resident": rng.random() < 0.92,
            "phone": p.phone,
            "contact_name": p.contact_name,
            "contact_phone": p.contact_phone,
            "address": p.address,
            "household_address": p.household_address,
            "completeness": rng.randint(60, 88) if p.status != "normal" else min(100, rng.randint(74, 110)),
            "programmes": p.programmes,
            "family_doctor": family_doctor,
            "basic_info": basic_info(p, rng),
        }

    @staticmethod
    def _record(p: Person, archive_id: str, n: int, draft: Draft, doctor: str) -> dict:
        return {
            "type": "record",
            "upstream_id": f"rec-{archive_id.removeprefix('arc-')}-{n:03d}",
            "version": 1,
            "archive_upstream_id": archive_id,
            "kind": draft.kind,
            "date": draft.date.isoformat(),
            "next_due_date": draft.next_due.isoformat() if draft.next_due else None,
            "institution_code": p.institution.code,
            "doctor": doctor,
            "diagnosis_codes": draft.diagnosis_codes,
            "payload": draft.payload,
        }


def generate(archives: int, seed: int = 0, today: dt.date | None = None) -> Iterator[dict]:
    """Yield ingest objects in file order: institutions, then each archive and its records."""
    run = _Run(archives, seed, today or default_today())
    yield from run.institution_lines()
    for archive, records in run.archive_lines():
        yield archive
        yield from records


def write_jsonl(
    path: str | Path,
    archives: int,
    seed: int = 0,
    today: dt.date | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Stream a JSON Lines file; return how many lines of each type were written.

    `progress(n)` is told how many archives were written since its previous call (every 250
    archives, and the rest at the end), so `tqdm(total=archives).update` fits as it is.
    """
    run = _Run(archives, seed, today or default_today())
    encode = _ENCODER.encode
    counts = {"institution": 0, "archive": 0, "record": 0}
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for obj in run.institution_lines():
            out.write(encode(obj) + "\n")
        counts["institution"] = len(run.institutions)
        for done, (archive, records) in enumerate(run.archive_lines(), start=1):
            out.write("\n".join([encode(archive), *map(encode, records)]) + "\n")
            counts["record"] += len(records)
            if progress is not None and done % _PROGRESS_EVERY == 0:
                progress(_PROGRESS_EVERY)
        counts["archive"] = archives
    if progress is not None and archives % _PROGRESS_EVERY:
        progress(archives % _PROGRESS_EVERY)
    return counts


# Archives were filed from 2009 on (国家基本公共卫生服务 began then); a newborn's at birth.
_FIRST_FILING = dt.date(2009, 10, 1)


def _filed_on(p: Person, drafts: list[Draft]) -> str:
    """建档日期: a month before the first record, never before birth or 2009 (no random draw, so the
    rest of a seeded run is unchanged)."""
    first = drafts[0].date - dt.timedelta(days=30) if drafts else _FIRST_FILING
    return max(p.birth, _FIRST_FILING, first).isoformat()
