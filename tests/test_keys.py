"""Key rotation: re-encrypt and re-index in batches; interruptible and resumable."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from conftest import make_settings
from ingest_lines import archive, institution, record, write
from sqlalchemy import select

from wechat_backend.db.models import Archive, ServiceRecord
from wechat_backend.keys import TARGETS, KeyRotation, RotationError
from wechat_backend.services import Services, build_services

NEW_KEY = base64.b64encode(bytes(range(100, 116))).decode()


async def seeded(services: Services, tmp_path: Path, n: int = 12) -> None:
    objs = [institution()] + [archive(i) for i in range(1, n + 1)] + [record(i, i) for i in range(1, n + 1)]
    assert (await services.ingest.import_file(write(tmp_path / "in.jsonl", objs))).rejected == 0


async def rotated_services(services: Services, tmp_path: Path, db_url: str, redis_url: str, **security) -> Services:
    old = services.settings.security
    sec = {"keys": {**old.keys, "k2": NEW_KEY}, "active_key": "k2", **security}
    settings = make_settings(tmp_path, db_url, redis_url, security=sec)
    return await build_services(settings, clock=services.clock, with_redis=False)


async def snapshot(svc: Services) -> list[tuple[str, dict, int | None]]:
    async with svc.sessions() as s:
        archives = (await s.scalars(select(Archive).order_by(Archive.id))).all()
        return [(a.key_id, svc.keyring.open(a.sealed, f"archive:{a.upstream_id}"), a.id_bidx) for a in archives]


async def test_rotation_reencrypts_everything_and_keeps_the_data(
    services: Services, tmp_path: Path, db_url: str, redis_url: str
) -> None:
    await seeded(services, tmp_path)
    before = await snapshot(services)
    new = await rotated_services(services, tmp_path, db_url, redis_url)
    try:
        assert (await new.key_rotation.pending())["archives"] == 12
        done = await new.key_rotation.run()
        assert done["archives"] == 12 and done["service_records"] == 12
        after = await snapshot(new)
        assert [a[0] for a in after] == ["k2"] * 12
        assert [a[1] for a in after] == [b[1] for b in before]
        assert sum((await new.key_rotation.pending()).values()) == 0
        async with new.sessions() as s:
            assert {r.key_id for r in (await s.scalars(select(ServiceRecord))).all()} == {"k2"}
    finally:
        await new.close()


async def test_an_interrupted_rotation_resumes_where_it_stopped(
    services: Services, tmp_path: Path, db_url: str, redis_url: str
) -> None:
    await seeded(services, tmp_path)
    new = await rotated_services(services, tmp_path, db_url, redis_url)
    try:
        rotation = KeyRotation(new.sessions, new.keyring, batch_size=5)

        class Stop(Exception):
            pass

        def stop_after_first_batch(n: int) -> None:
            raise Stop

        with pytest.raises(Stop):
            await rotation.run(progress=stop_after_first_batch)
        assert (await rotation.pending())["archives"] == 7  # one committed batch of 5
        await rotation.run()
        assert sum((await rotation.pending()).values()) == 0
    finally:
        await new.close()


async def test_a_new_blind_index_key_reindexes_lookups(
    services: Services, tmp_path: Path, db_url: str, redis_url: str
) -> None:
    await seeded(services, tmp_path, n=3)
    new = await rotated_services(
        services, tmp_path, db_url, redis_url, blind_index_key=base64.b64encode(bytes(range(32))).decode()
    )
    try:
        await new.key_rotation.run()
        async with new.sessions() as s:
            a1 = (await s.scalars(select(Archive).where(Archive.upstream_id == "arc-1"))).one()
        assert a1.id_bidx == new.keyring.blind_index("id_number", archive(1)["id_number"])
        assert a1.id_bidx != services.keyring.blind_index("id_number", archive(1)["id_number"]) or a1.bidx_fp != (
            services.keyring.blind_fingerprint
        )
        assert a1.bidx_fp == new.keyring.blind_fingerprint
    finally:
        await new.close()


async def test_a_missing_old_key_stops_with_a_clear_message(
    services: Services, tmp_path: Path, db_url: str, redis_url: str
) -> None:
    await seeded(services, tmp_path, n=2)
    settings = make_settings(tmp_path, db_url, redis_url, security={"keys": {"k2": NEW_KEY}, "active_key": "k2"})
    new = await build_services(settings, with_redis=False)
    try:
        with pytest.raises(RotationError, match="k1"):
            await new.key_rotation.run()
    finally:
        await new.close()


async def test_rotation_does_not_overwrite_a_row_changed_meanwhile(
    services: Services, tmp_path: Path, db_url: str, redis_url: str
) -> None:
    await seeded(services, tmp_path, n=2)
    new = await rotated_services(services, tmp_path, db_url, redis_url)
    try:
        target = next(t for t in TARGETS if t.name == "archives")
        async with new.sessions() as s:
            row_id, stale = (
                await s.execute(select(Archive.id, Archive.sealed).where(Archive.upstream_id == "arc-2"))
            ).one()
        # An import lands between rotation's read and its write.
        assert (
            await new.ingest.import_file(write(tmp_path / "v2.jsonl", [archive(2, version=2, name="新名字")]))
        ).updated
        async with new.sessions.begin() as s:
            conn = await s.connection()
            result = await conn.execute(
                new.key_rotation.update_statement(target), [new.key_rotation.reseal(target, row_id, stale, "arc-2")]
            )
        assert result.rowcount == 0
        assert [f["name"] for _, f, _ in await snapshot(new)] == ["刘淑珍", "新名字"]
    finally:
        await new.close()
