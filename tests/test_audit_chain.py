"""The audit log is tamper-evident and says no reason in clear that could be medical: rows are
chained by a sealer in the order it takes them, and an edit, a deletion in the middle, a deletion
of the newest rows or a forged checkpoint is found by ``audit verify``, naming the row."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, insert, select, update

from wechat_backend import audit
from wechat_backend.audit_chain import (
    COLUMNS,
    GENESIS,
    HEAD_FILE,
    AuditChain,
    ChainBroken,
    canonical,
    chain_keys,
    read_head_file,
    row_mac,
)
from wechat_backend.clock import FixedClock
from wechat_backend.config import SecuritySettings
from wechat_backend.crypto import DecryptError, KeyRing
from wechat_backend.db import create_engine, is_sqlite, session_factory
from wechat_backend.db.migrate import alembic_config
from wechat_backend.db.models import AuditChainHead, AuditCheckpoint, AuditEvent
from wechat_backend.services import Services

LOG = AuditEvent.__table__
AT = dt.datetime(2026, 11, 25, 2, 0, 0, 123456, tzinfo=dt.UTC)


def ring() -> KeyRing:
    return KeyRing(keys={"k1": bytes(range(16))}, active_key="k1", blind_index_key=bytes(range(32)))


def sample(**over: Any) -> dict[str, Any]:
    row = {
        "id": 7,
        "seq": 3,
        "at": AT,
        "actor_type": "identity",
        "actor_id": "12",
        "action": "bind_start",
        "archive_id": 42,
        "record_id": None,
        "result": "denied",
        "reason": None,
        "reason_sealed": b"\x01\x02",
        "key_id": "k1",
        "request_id": "r1",
        "client_ip": "10.0.0.1",
        "detail": {"target": "phone", "relation": "self"},
    }
    return row | over


# --------------------------------------------------------------------------- pure: canonical form, macs, reasons


def test_the_canonical_form_covers_every_column_but_the_mac() -> None:
    assert set(COLUMNS) == {c.name for c in LOG.columns} - {"mac"}
    base = canonical(sample())
    changed = {
        "id": 8,
        "seq": 4,
        "at": AT + dt.timedelta(microseconds=1),
        "actor_type": "staff",
        "actor_id": "13",
        "action": "bind_verify",
        "archive_id": 43,
        "record_id": 1,
        "result": "ok",
        "reason": "bad_input",
        "reason_sealed": b"\x01\x03",
        "key_id": "k2",
        "request_id": "r2",
        "client_ip": "10.0.0.2",
        "detail": {"target": "contact_phone", "relation": "self"},
    }
    assert changed.keys() == set(COLUMNS)
    for name, value in changed.items():
        assert canonical(sample(**{name: value})) != base, name


def test_the_canonical_form_does_not_depend_on_key_order_or_time_zone() -> None:
    east = dt.timezone(dt.timedelta(hours=8))
    again = sample(detail={"relation": "self", "target": "phone"}, at=AT.astimezone(east))
    assert canonical(again) == canonical(sample())
    assert b'"at":"2026-11-25T02:00:00.123456Z"' in canonical(sample())


def test_each_mac_covers_the_one_before() -> None:
    key, _ = chain_keys(bytes(32))
    first = row_mac(key, GENESIS, sample(seq=1))
    assert len(first) == 32
    assert row_mac(key, first, sample(seq=2)) != row_mac(key, GENESIS, sample(seq=2))
    assert row_mac(chain_keys(bytes(31) + b"\x01")[0], GENESIS, sample(seq=1)) != first


def test_reasons_that_could_be_medical_are_sealed_to_one_length() -> None:
    keys, row = ring(), sample()
    sealed = {r: audit.reason_columns(keys, row, r) for r in ("sensitive_programme", "not_opened", "county_closed")}
    assert {len(c["reason_sealed"]) for c in sealed.values()} == {len(sealed["not_opened"]["reason_sealed"])}
    for reason, cols in sealed.items():
        assert cols["reason"] is None and cols["key_id"] == "k1"
        assert reason.encode() not in cols["reason_sealed"]
        assert audit.reason_of(row | cols, keys) == reason
    # Request-only reasons stay readable without keys; a reason nobody listed is sealed.
    assert audit.reason_columns(keys, row, "rate_limited") == {
        "reason": "rate_limited",
        "reason_sealed": None,
        "key_id": None,
    }
    assert audit.reason_columns(keys, row, "some_new_reason")["reason"] is None
    assert audit.reason_columns(None, row, None)["reason"] is None


def test_a_sealed_reason_moved_to_another_row_does_not_open() -> None:
    keys = ring()
    cols = audit.reason_columns(keys, sample(), "sensitive_programme")
    with pytest.raises(DecryptError):
        audit.reason_of(sample(archive_id=43) | cols, keys)


def test_a_reason_is_never_written_in_clear_for_want_of_a_key() -> None:
    with pytest.raises(RuntimeError, match="configure"):
        audit.reason_columns(None, sample(), "sensitive_programme")


# --------------------------------------------------------------------------- helpers


async def put(services: Services, *ids: int, action: str = "archive_read", **cols: Any) -> None:
    """Committed audit rows with the given ids (as if their transactions committed in this order)."""
    rows = [
        {"id": i, "at": AT + dt.timedelta(seconds=i), "actor_type": "system", "action": action, "result": "ok"} | cols
        for i in ids
    ]
    async with services.sessions.begin() as s:
        await s.execute(insert(LOG), rows)


async def record(services: Services, n: int, **kw: Any) -> None:
    async with services.sessions.begin() as s:
        for i in range(n):
            audit.record(s, actor_type="identity", actor_id=str(i), action="archive_list", archive_id=i, **kw)


async def seqs(services: Services) -> list[tuple[int, int | None]]:
    async with services.sessions() as s:
        return [tuple(r) for r in (await s.execute(select(LOG.c.id, LOG.c.seq).order_by(LOG.c.id))).all()]


async def sql(services: Services, statement: Any) -> None:
    async with services.sessions.begin() as s:
        await s.execute(statement)


def problems(result: Any) -> list[tuple[str, int | None, int | None]]:
    return [(p.code, p.seq, p.row_id) for p in result.problems]


async def chained(services: Services, n: int) -> list[int]:
    """``n`` rows recorded and sealed; their ids in seq order."""
    await record(services, n)
    assert await services.audit_chain.seal_pending(batch=7) == n  # several batches
    async with services.sessions() as s:
        return list((await s.scalars(select(LOG.c.id).order_by(LOG.c.seq))).all())


# --------------------------------------------------------------------------- sealing


async def test_rows_are_chained_in_the_order_they_are_sealed_not_by_id(services: Services) -> None:
    chain = services.audit_chain
    await put(services, 1, 2, 4)
    assert await chain.seal_pending() == 3
    assert await seqs(services) == [(1, 1), (2, 2), (4, 3)]
    await put(services, 3)  # its transaction committed after the sealer ran
    assert await chain.seal_pending() == 1
    assert await chain.seal_pending() == 0
    assert await seqs(services) == [(1, 1), (2, 2), (3, 4), (4, 3)]
    result = await chain.verify()
    assert result.ok and result.checked == 4 and result.last_seq == 4, result


async def test_an_intact_chain_verifies_and_its_head_is_kept_outside_the_table(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    chain = services.audit_chain
    caplog.set_level(logging.INFO, logger="wechat_backend.audit")
    ids = await chained(services, 20)
    result = await chain.verify()
    assert (result.ok, result.checked, result.last_seq, result.pending, result.head_file) == (
        True,
        20,
        20,
        0,
        "checked",
    )
    async with services.sessions() as s:
        last_mac = await s.scalar(select(LOG.c.mac).where(LOG.c.seq == 20))
        head = (await s.execute(select(AuditChainHead.seq, AuditChainHead.mac))).one()
    assert tuple(head) == (20, last_mac)
    on_disk = json.loads(chain.head_file.read_text())
    assert chain.head_file.name == HEAD_FILE
    assert (on_disk["seq"], on_disk["mac"], on_disk["id"]) == (20, last_mac.hex(), ids[-1])
    assert f"audit chain head seq=20 mac={last_mac.hex()[:16]}" in caplog.text
    # More rows later extend the same chain; unsealed ones are counted, not checked.
    await record(services, 3)
    assert (await chain.verify()).pending == 3
    await chain.seal_pending()
    result = await chain.verify()
    assert result.ok and result.checked == 23 and result.pending == 0


async def test_reasons_are_not_in_clear_in_the_table_but_can_be_read_back(services: Services) -> None:
    await record(services, 1, result="denied", reason="sensitive_programme")
    await record(services, 1, result="denied", reason="rate_limited")
    # A row written before revision 0004, its reason in clear: the sealer seals it on the way.
    await put(services, 1000, action="bind_start", result="denied", reason="not_opened", archive_id=5)
    assert await services.audit_chain.seal_pending() == 3
    async with services.sessions() as s:
        rows = (await s.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars().all()
        clear = list((await s.scalars(select(LOG.c.reason).order_by(LOG.c.id))).all())
    assert clear == [None, "rate_limited", None]
    for row in rows:
        assert b"sensitive" not in (row.reason_sealed or b"") and b"opened" not in (row.reason_sealed or b"")
    keys = services.keyring
    assert [audit.reason_of(r, keys) for r in rows] == ["sensitive_programme", "rate_limited", "not_opened"]
    assert (await services.audit_chain.verify()).ok


async def test_reasons_written_before_revision_0004_are_sealed_by_the_first_run(db_url: str, tmp_path: Path) -> None:
    engine = create_engine(db_url)

    async def migrate(move: Any, revision: str) -> None:
        cfg = alembic_config()

        def run(conn: Any) -> None:
            cfg.attributes["connection"] = conn
            move(cfg, revision)

        async with engine.begin() as conn:
            await conn.run_sync(run)

    try:
        await migrate(command.downgrade, "0003")
        async with engine.begin() as conn:  # the columns of 0003 only
            old = {"at": AT, "actor_type": "identity", "action": "bind_start", "archive_id": 5, "result": "denied"}
            await conn.execute(insert(LOG).values(**old, reason="sensitive_programme"))
            await conn.execute(insert(LOG).values(**old, reason="rate_limited"))
        await migrate(command.upgrade, "head")
        keys = ring()
        secret = SecuritySettings(audit_hmac_key=base64.b64encode(bytes(32)).decode())
        chain = AuditChain(session_factory(engine), keys, secret, tmp_path, FixedClock(AT))
        async with engine.connect() as conn:  # the migration holds no key: still in clear until sealed
            assert (await conn.execute(select(LOG.c.reason))).scalars().all() == ["sensitive_programme", "rate_limited"]
        assert await chain.seal_pending() == 2
        async with session_factory(engine)() as s:
            rows = (await s.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
        assert [r.reason for r in rows] == [None, "rate_limited"]
        assert [audit.reason_of(r, keys) for r in rows] == ["sensitive_programme", "rate_limited"]
        assert (await chain.verify()).ok
    finally:
        await engine.dispose()


async def test_the_worker_loop_seals_until_stopped(services: Services) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(services.audit_chain.run(stop, every=0.05))
    try:
        await record(services, 3)
        for _ in range(200):
            if all(seq is not None for _, seq in await seqs(services)):
                break
            await asyncio.sleep(0.02)
        assert [seq for _, seq in await seqs(services)] == [1, 2, 3]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


# --------------------------------------------------------------------------- tampering


@pytest.mark.parametrize(
    "change",
    [
        {"action": "archive_read"},
        {"detail": {"n": 1}},
        {"result": "denied"},
        {"at": AT},
    ],
)
async def test_an_edited_row_is_named(services: Services, change: dict[str, Any]) -> None:
    ids = await chained(services, 10)
    await sql(services, update(LOG).where(LOG.c.seq == 6).values(**change))
    result = await services.audit_chain.verify()
    assert not result.ok and result.first_bad_seq == 6 and result.problem == "edited"
    assert problems(result) == [("edited", 6, ids[5])]  # only that row: the next one checks against its stored mac


async def test_a_deleted_row_in_the_middle_is_named_by_the_gap(services: Services) -> None:
    ids = await chained(services, 10)
    await sql(services, delete(LOG).where(LOG.c.seq.in_([4, 5])))
    result = await services.audit_chain.verify()
    assert problems(result) == [("deleted", 4, ids[5])] and result.problems[0].until == 5
    assert result.checked == 8 - 1  # the row after the gap cannot be checked


async def test_deleting_the_newest_rows_and_the_head_row_is_caught_by_the_head_file(services: Services) -> None:
    chain = services.audit_chain
    await chained(services, 10)
    await sql(services, delete(LOG).where(LOG.c.seq > 7))
    await sql(services, delete(AuditChainHead.__table__))
    result = await chain.verify()
    assert not result.ok and result.checked == 7
    assert result.problems[0].code == "newest_deleted" and result.problems[0].witness == "file"
    assert (result.first_bad_seq, result.problems[0].until) == (8, 10)
    assert "head_missing" in [p.code for p in result.problems]


async def test_a_head_row_put_back_over_deleted_rows_does_not_fool_the_sealer(services: Services) -> None:
    chain = services.audit_chain
    await chained(services, 10)
    witness = chain.head_file.read_text()
    async with services.sessions() as s:
        mac7 = await s.scalar(select(LOG.c.mac).where(LOG.c.seq == 7))
    await sql(services, delete(LOG).where(LOG.c.seq > 7))
    await sql(services, update(AuditChainHead.__table__).values(seq=7, mac=mac7))
    result = await chain.verify()
    assert problems(result) == [("newest_deleted", 8, None)]
    # New rows must not take seq 8–10 and so erase the evidence: the sealer stops instead.
    await record(services, 3)
    with pytest.raises(ChainBroken) as stopped:
        await chain.seal_pending()
    assert stopped.value.problem.code == "newest_deleted"
    assert chain.head_file.read_text() == witness
    assert [seq for _, seq in await seqs(services)][-3:] == [None, None, None]


async def test_old_rows_may_go_after_a_checkpoint(services: Services) -> None:
    chain = services.audit_chain
    await chained(services, 10)
    cp = await chain.checkpoint()
    assert cp is not None and cp.seq == 10
    assert (await chain.checkpoint()) == cp  # nothing new: the same one
    await record(services, 5)
    await chain.seal_pending()
    await sql(services, delete(LOG).where(LOG.c.seq <= cp.seq))  # what a retention job does
    result = await chain.verify()
    assert result.ok and result.start_seq == 10 and result.checked == 5 and result.last_seq == 15, result
    # Rows after the checkpoint are still covered.
    await sql(services, delete(LOG).where(LOG.c.seq == 11))
    assert problems(await chain.verify())[0][:2] == ("deleted", 11)


async def test_a_checkpoint_not_made_by_the_chain_is_not_a_place_to_start(services: Services) -> None:
    chain = services.audit_chain
    await chained(services, 10)
    async with services.sessions() as s:
        mac5 = await s.scalar(select(LOG.c.mac).where(LOG.c.seq == 5))
    # Someone hides the deletion of rows 1–5 behind a checkpoint of their own making.
    await sql(services, insert(AuditCheckpoint.__table__).values(seq=5, mac=mac5, at=AT, tag=bytes(32)))
    await sql(services, delete(LOG).where(LOG.c.seq <= 5))
    result = await chain.verify()
    assert [p[:2] for p in problems(result)] == [("checkpoint_forged", 5), ("deleted", 1)]


async def test_two_sealers_at_once_make_one_chain(services: Services, db_url: str) -> None:
    if is_sqlite(db_url):
        pytest.skip("SQLite has one writer: the sealers take turns by construction")
    await record(services, 1500)
    engines = [create_engine(db_url), create_engine(db_url)]
    s = services.settings
    try:
        chains = [
            AuditChain(session_factory(e), services.keyring, s.security, s.data_dir, services.clock) for e in engines
        ]
        first = await asyncio.gather(*(c.seal_pending(batch=100) for c in chains))
        assert sum(first) == 1500
        # Again, with rows committing while both seal.
        during = await asyncio.gather(*(c.seal_pending(batch=50) for c in chains), record(services, 300))
        rest = await chains[0].seal_pending()
        assert during[0] + during[1] + rest == 300
    finally:
        for e in engines:
            await e.dispose()
    all_seqs = sorted(seq for _, seq in await seqs(services))
    assert all_seqs == list(range(1, 1800 + 1))
    assert (await services.audit_chain.verify()).ok


# --------------------------------------------------------------------------- the command line


def run_cli(tmp_path: Path, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env |= {"WB_SERVER_DATA_DIR": str(tmp_path / "cli"), "WB_DATABASE_URL": db_url, "WB_SERVER_MODE": "demo"}
    return subprocess.run(
        [sys.executable, "-m", "wechat_backend", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


async def in_thread(tmp_path: Path, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, tmp_path, db_url, *args)


async def test_audit_verify_exit_codes(services: Services, tmp_path: Path, db_url: str) -> None:
    await put(services, 1, 2, 3, 5, result="denied", reason="bad_input")
    sealed = await in_thread(tmp_path, db_url, "worker", "--once")  # the worker seals too
    assert sealed.returncode == 0 and "审计日志：已封存 4 行" in sealed.stdout, sealed.stderr
    again = await in_thread(tmp_path, db_url, "audit", "seal")
    assert again.returncode == 0 and "已封存 0 行" in again.stdout
    intact = await in_thread(tmp_path, db_url, "audit", "verify")
    assert intact.returncode == 0 and "审计日志完整：已检查 4 行" in intact.stdout, intact.stdout + intact.stderr
    await sql(services, update(LOG).where(LOG.c.id == 3).values(action="archive_list"))
    broken = await in_thread(tmp_path, db_url, "audit", "verify")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "seq=3（id=3）" in broken.stdout and "被修改" in broken.stdout
    assert "Traceback" not in broken.stderr + intact.stderr


async def test_audit_verify_cannot_run_without_a_schema(tmp_path: Path) -> None:
    done = await in_thread(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/empty.db", "audit", "verify")
    assert done.returncode == 2 and "db upgrade" in done.stderr and "Traceback" not in done.stderr


async def test_the_head_file_is_only_moved_forwards(tmp_path: Path) -> None:
    from wechat_backend.audit_chain import Head, write_head_file

    path = tmp_path / HEAD_FILE
    assert write_head_file(path, Head(5, b"\x05" * 32), 9, AT)
    assert not write_head_file(path, Head(4, b"\x04" * 32), 8, AT)  # a slower sealer, behind
    assert read_head_file(path) == Head(5, b"\x05" * 32)
    assert not (tmp_path / (HEAD_FILE.removesuffix(".json") + ".tmp")).exists()


def test_keys_are_derived_apart() -> None:
    row, checkpoint = chain_keys(base64.b64decode(base64.b64encode(bytes(32))))
    assert row != checkpoint and len(row) == len(checkpoint) == 32
