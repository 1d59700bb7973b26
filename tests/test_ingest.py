"""Importing from the upstream system, on every database backend."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ingest_lines import COUNTY, archive, institution, record, write
from sqlalchemy import func, select

from wechat_backend.db.models import Archive, County, Institution, ServiceRecord
from wechat_backend.ingest.service import IngestService
from wechat_backend.services import Services


async def rows(services: Services, model: type) -> list:
    async with services.sessions() as s:
        return list((await s.scalars(select(model).order_by(model.id if hasattr(model, "id") else model.code))).all())


async def count(services: Services, model: type) -> int:
    async with services.sessions() as s:
        return await s.scalar(select(func.count()).select_from(model)) or 0


def small_file(tmp_path: Path) -> Path:
    return write(
        tmp_path / "in.jsonl",
        [institution(), archive(1), archive(2, name="张建国"), record(1, 1), record(2, 1), record(3, 2)],
    )


async def test_a_file_lands_encrypted_and_counties_start_closed(services: Services, tmp_path: Path) -> None:
    report = await services.ingest.import_file(small_file(tmp_path))
    assert (report.inserted, report.updated, report.unchanged, report.rejected) == (6, 0, 0, 0)
    assert report.exit_code == 0
    (county,) = await rows(services, County)
    assert (county.code, county.name, county.opening, county.phase) == (COUNTY, "莘县", False, "key_populations")
    a1, a2 = await rows(services, Archive)
    assert a1.county_code == COUNTY and a1.key_id == services.settings.security.active_key
    fields = services.keyring.open(a1.sealed, "archive:arc-1")
    assert fields["name"] == "刘淑珍" and fields["id_number"] == archive(1)["id_number"]
    assert fields["programmes"] == ["elderly", "hypertension"]
    assert a1.id_bidx == services.keyring.blind_index("id_number", archive(1)["id_number"])
    assert "刘淑珍".encode() not in a1.sealed
    records = await rows(services, ServiceRecord)
    assert [r.archive_id for r in records] == [a1.id, a1.id, a2.id]
    sealed = services.keyring.open(records[0].sealed, "record:rec-1")
    assert sealed["kind"] == "hypertension_followup" and sealed["label"]["c"] == "N"


async def test_importing_the_same_file_twice_changes_nothing(services: Services, tmp_path: Path) -> None:
    path = small_file(tmp_path)
    await services.ingest.import_file(path)
    before = [(a.sealed, a.updated_at) for a in await rows(services, Archive)]
    again = await services.ingest.import_file(path)
    assert (again.inserted, again.updated, again.unchanged, again.rejected) == (0, 0, 6, 0)
    assert [(a.sealed, a.updated_at) for a in await rows(services, Archive)] == before


async def test_version_rule_higher_replaces_equal_and_lower_do_nothing(services: Services, tmp_path: Path) -> None:
    await services.ingest.import_file(small_file(tmp_path))
    newer = write(tmp_path / "v2.jsonl", [archive(1, version=5, status="lost", name="刘淑贞")])
    r = await services.ingest.import_file(newer)
    assert (r.updated, r.unchanged) == (1, 0)
    same = write(tmp_path / "v5b.jsonl", [archive(1, version=5, name="别的名字")])
    older = write(tmp_path / "v3.jsonl", [archive(1, version=3, name="更旧的名字")])
    assert (await services.ingest.import_file(same)).unchanged == 1
    assert (await services.ingest.import_file(older)).unchanged == 1
    a1 = (await rows(services, Archive))[0]
    assert (a1.version, a1.status) == (5, "lost")
    assert services.keyring.open(a1.sealed, "archive:arc-1")["name"] == "刘淑贞"


async def test_within_one_file_the_highest_version_wins(services: Services, tmp_path: Path) -> None:
    path = write(
        tmp_path / "dup.jsonl",
        [institution(), archive(1, version=2, name="乙"), archive(1, version=1, name="甲"), archive(1, version=3)],
    )
    r = await services.ingest.import_file(path)
    assert (r.inserted, r.updated, r.unchanged) == (2, 1, 1)
    (a1,) = await rows(services, Archive)
    assert a1.version == 3


async def test_bad_lines_are_reported_by_number_and_the_rest_lands(services: Services, tmp_path: Path) -> None:
    lines = [
        institution(),  # 1
        "{not json",  # 2
        {"type": "patient", "upstream_id": "x"},  # 3
        archive(1),  # 4
        archive(2, id_number="371522195503101231"),  # 5 wrong check digit
        archive(3, archive_no="37150200110100003"),  # 6 another county's number
        archive(4, institution_code="nope"),  # 7 unknown institution
        {k: v for k, v in archive(5).items() if k != "name"},  # 8 missing name
        record(1, 1),  # 9
        record(2, 99),  # 10 unknown archive
        record(3, 1, kind="dental"),  # 11
        record(4, 1, date="2026/10/08"),  # 12
        "",  # 13 blank: skipped, not an error
        archive(6, birth_date="1960-01-01"),  # 14 birth date differs from the ID number
        archive(7, phone="abc"),  # 15
        "[1, 2]",  # 16
    ]
    seen: list[tuple[int, str]] = []
    report = await services.ingest.import_file(
        write(tmp_path / "bad.jsonl", lines), on_error=lambda n, why: seen.append((n, why))
    )
    assert report.inserted == 3 and report.rejected == 12
    assert report.exit_code == 1
    reasons = dict(seen)
    assert sorted(reasons) == [2, 3, 5, 6, 7, 8, 10, 11, 12, 14, 15, 16]
    assert "JSON" in reasons[2]
    assert "type" in reasons[3]
    assert "校验位" in reasons[5]
    assert "前6位" in reasons[6]
    assert "尚未导入" in reasons[7] and "尚未导入" in reasons[10]
    assert "name" in reasons[8]
    assert "kind" in reasons[11]
    assert "YYYY-MM-DD" in reasons[12]
    assert "出生日期" in reasons[14]
    assert "phone" in reasons[15]
    assert all("371522195503101231" not in why for _, why in seen)  # reasons never echo an ID number
    assert await count(services, Archive) == 1 and await count(services, ServiceRecord) == 1


async def test_a_newborn_without_id_number_is_accepted_but_an_adult_is_not(services: Services, tmp_path: Path) -> None:
    path = write(
        tmp_path / "nb.jsonl",
        [
            institution(),
            archive(1, id_number=None, birth_date="2026-10-01", phone=None, contact_phone="13906351234"),
            archive(2, id_number=None),
        ],
    )
    seen: list[tuple[int, str]] = []
    r = await services.ingest.import_file(path, on_error=lambda n, why: seen.append((n, why)))
    assert r.inserted == 2 and [n for n, _ in seen] == [3]
    (a1,) = await rows(services, Archive)
    assert a1.id_bidx is None
    assert a1.contact_phone_bidx == services.keyring.blind_index("phone", "13906351234")


async def test_fifteen_digit_id_numbers_are_stored_upgraded(services: Services, tmp_path: Path) -> None:
    # 371522 550310 123 -> 18 digits with 19 inserted
    from wechat_backend.validators import upgrade_id15

    path = write(tmp_path / "15.jsonl", [institution(), archive(1, id_number="371522550310123")])
    assert (await services.ingest.import_file(path)).inserted == 2
    (a1,) = await rows(services, Archive)
    assert services.keyring.open(a1.sealed, "archive:arc-1")["id_number"] == upgrade_id15("371522550310123")


async def test_oversized_line_is_rejected_not_loaded(services: Services, tmp_path: Path) -> None:
    svc = services.ingest
    small = IngestService(
        services.sessions,
        services.keyring,
        services.settings.privacy,
        dataclasses.replace(services.settings.ingest, max_line_bytes=2000),
        today=services.clock.today,
    )
    big = archive(1, address="很长" * 2000)
    seen: list[tuple[int, str]] = []
    path = write(tmp_path / "big.jsonl", [institution(), big, archive(2)])
    r = await small.import_file(path, on_error=lambda n, why: seen.append((n, why)))
    assert r.inserted == 2 and seen and seen[0][0] == 2 and "字节" in seen[0][1]
    assert svc is not small


async def test_small_batches_resolve_references_across_batches(services: Services, tmp_path: Path) -> None:
    tiny = IngestService(
        services.sessions,
        services.keyring,
        services.settings.privacy,
        dataclasses.replace(services.settings.ingest, batch_size=2),
        today=services.clock.today,
    )
    objs = [institution()] + [archive(n) for n in range(1, 8)] + [record(n, n) for n in range(1, 8)]
    r = await tiny.import_file(write(tmp_path / "b.jsonl", objs))
    assert (r.inserted, r.rejected) == (15, 0)


async def test_an_institution_code_already_owned_elsewhere_is_rejected(services: Services, tmp_path: Path) -> None:
    await services.ingest.import_file(write(tmp_path / "a.jsonl", [institution()]))
    seen: list[tuple[int, str]] = []
    r = await services.ingest.import_file(
        write(tmp_path / "b.jsonl", [institution(upstream_id="inst-other")]), on_error=lambda n, w: seen.append((n, w))
    )
    assert r.rejected == 1 and "机构代码" in seen[0][1]
    assert len(await rows(services, Institution)) == 1


async def test_sensitive_records_are_labelled_restricted(services: Services, tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.jsonl",
        [
            institution(),
            archive(1),
            record(1, 1, kind="tuberculosis_followup", diagnosis_codes=["A15.000x001"], payload={}),
            record(2, 1, kind="outpatient", diagnosis_codes=["J06.9"], payload={"note": "上呼吸道感染"}),
        ],
    )
    await services.ingest.import_file(path)
    tb, cold = await rows(services, ServiceRecord)
    assert services.keyring.open(tb.sealed, "record:rec-1")["label"] == {"c": "R", "s": ["TB"]}
    assert services.keyring.open(cold.sealed, "record:rec-2")["label"]["c"] == "N"


async def test_import_objects_takes_lines_already_in_memory(services: Services) -> None:
    import json

    r = await services.ingest.import_objects([json.dumps(institution()), json.dumps(archive(1))])
    assert r.inserted == 2


async def test_payload_keys_missing_from_the_field_dictionary_are_counted_by_kind(
    services: Services, tmp_path: Path
) -> None:
    import json

    ht = {"sbp": 142, "dbp": 88, "foo_bar": 1, "lab": {"x": 1}}
    path = write(
        tmp_path / "u.jsonl",
        [
            institution(),
            archive(1),
            record(1, 1, payload=ht),
            record(2, 1, payload={"sbp": 130, "foo_bar": "y"}),
            record(3, 1, kind="outpatient", diagnosis_codes=["J06.9"], payload={"diagnosis": "感冒", "note": "z"}),
            record(4, 1, kind="prenatal_first", payload={"hiv_antibody": "1", "syphilis": "1"}),  # known, withheld
            record(5, 1, kind="tuberculosis_followup", payload={"anything": 1}),  # never shown: not counted
        ],
    )
    report = await services.ingest.import_file(path)
    assert report.rejected == 0
    assert report.unknown_keys == {
        "hypertension_followup": {"foo_bar": 2, "lab": 1},
        "outpatient": {"note": 1},
    }
    again = await services.ingest.import_objects([json.dumps(record(6, 1, payload={"sbp": 1, "foo_bar": 2}))])
    assert again.unknown_keys == {"hypertension_followup": {"foo_bar": 1}}
