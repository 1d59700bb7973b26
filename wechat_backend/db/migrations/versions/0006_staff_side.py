"""staff side: staff accounts with sealed name and phone, local opening decisions, statistics'
aggregates, the feedback inbox, the institutions' QR codes

``staff`` loses the unused username/password/openid columns (there was no way to create a staff
row before this revision) and gains a public id, the sealed name and phone with the phone's blind
index, the linked WeChat identity and the time of the last verified SMS code.

``archives`` gains ``name_birth_bidx`` (find by name + birth date), the staff's local opening
decision (``open_override`` and who/when; an import never writes them) and the key-group flag the
statistics count. The data part needs the keys: ``wechat-backend db upgrade`` fills the new index
and flag for existing archives and counts every institution (``stats.backfill``), until
``data_steps`` records it done.

New tables: ``archive_counts`` (stock figures per institution, kept current), ``stat_snapshots``
(one day's stock figures), ``qr_codes`` (each institution's permanent QR code). ``feedback`` gains
its county, route, channel and delivery; ``identities.subscribed_at`` gets an index (follows by QR
code within a period).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 20:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.drop_constraint("uq_staff_openid", type_="unique")
        batch.drop_constraint("uq_staff_username", type_="unique")
        batch.drop_column("openid")
        batch.drop_column("username")
        batch.drop_column("password_hash")
        batch.add_column(sa.Column("public_id", sa.String(length=24), nullable=False))
        batch.add_column(sa.Column("sealed", sa.LargeBinary(), nullable=False))
        batch.add_column(sa.Column("key_id", sa.String(length=16), nullable=False))
        batch.add_column(sa.Column("phone_bidx", sa.BigInteger(), nullable=False))
        batch.add_column(sa.Column("identity_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("linked_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("sms_verified_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("disabled_at", UTC_DATETIME, nullable=True))
        batch.create_unique_constraint(op.f("uq_staff_public_id"), ["public_id"])
        batch.create_unique_constraint(op.f("uq_staff_identity_id"), ["identity_id"])
        batch.create_index(op.f("ix_staff_phone_bidx"), ["phone_bidx"])
        batch.create_foreign_key(
            op.f("fk_staff_identity_id_identities"), "identities", ["identity_id"], ["id"], ondelete="SET NULL"
        )

    # ``archives`` and ``identities`` are altered in place, never in batch mode: on SQLite a batch
    # rebuilds the table, and dropping a parent table with foreign keys on cascade-deletes every
    # record, binding and push that points at it.
    for column in (
        sa.Column("name_birth_bidx", sa.BigInteger(), nullable=True),
        sa.Column("open_override", sa.Boolean(), nullable=True),
        sa.Column("open_override_at", UTC_DATETIME, nullable=True),
        sa.Column("open_override_by", sa.Integer(), nullable=True),
        sa.Column("key_group", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("key_group_review_on", sa.Date(), nullable=True),
    ):
        op.add_column("archives", column)
    op.create_index(op.f("ix_archives_name_birth_bidx"), "archives", ["name_birth_bidx"])
    op.create_index(op.f("ix_archives_key_group_review_on"), "archives", ["key_group_review_on"])
    # The statistics recount one institution at a time.
    op.create_index(op.f("ix_archives_institution_code"), "archives", ["institution_code"])
    op.create_index(op.f("ix_identities_subscribed_at"), "identities", ["subscribed_at"])

    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("county_code", sa.String(length=6), nullable=True))
        batch.add_column(sa.Column("route", sa.String(length=10), nullable=False, server_default="city"))
        batch.add_column(sa.Column("channel", sa.String(length=10), nullable=False, server_default="page"))
        batch.add_column(sa.Column("delivery", sa.String(length=12), nullable=True))
        batch.create_index(op.f("ix_feedback_county_code"), ["county_code"])
        batch.create_index(op.f("ix_feedback_replied_at"), ["replied_at"])
        batch.create_index(op.f("ix_feedback_created_at"), ["created_at"])

    for name in ("archive_counts", "stat_snapshots"):
        day = [sa.Column("day", sa.Date(), nullable=False)] if name == "stat_snapshots" else []
        extra = [sa.Column("updated_at", UTC_DATETIME, nullable=False)] if name == "archive_counts" else []
        key = ["day", "county_code", "institution_code"] if day else ["county_code", "institution_code"]
        op.create_table(
            name,
            *day,
            sa.Column("county_code", sa.String(length=6), nullable=False),
            sa.Column("institution_code", sa.String(length=32), nullable=False),
            sa.Column("archives", sa.Integer(), nullable=False),
            sa.Column("key_group", sa.Integer(), nullable=False),
            sa.Column("opened", sa.Integer(), nullable=False),
            sa.Column("bound", sa.Integer(), nullable=False),
            *extra,
            sa.PrimaryKeyConstraint(*key, name=op.f(f"pk_{name}")),
        )

    op.create_table(
        "qr_codes",
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("ticket", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("institution_code", name=op.f("pk_qr_codes")),
    )
    # Audit viewer filters (actor, action) within a date range.
    op.create_index(op.f("ix_audit_log_actor_id"), "audit_log", ["actor_id"])
    op.create_index(op.f("ix_audit_log_action_at"), "audit_log", ["action", "at"])
    # Statistics: pushes placed by an index-only join with the archives; distinct readers per day.
    op.create_index("ix_archives_id_place", "archives", ["id"], postgresql_include=["county_code", "institution_code"])
    op.create_table(
        "reader_days",
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["identity_id"], ["identities.id"], name=op.f("fk_reader_days_identity_id_identities"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("institution_code", "day", "identity_id", name=op.f("pk_reader_days")),
    )
    op.create_index(
        "ix_reader_days_county_code_day",
        "reader_days",
        ["county_code", "day"],
        postgresql_include=["institution_code", "identity_id"],
    )


def downgrade() -> None:
    # Before anything is dropped (SQLite runs each DDL statement on its own): the old staff table
    # cannot hold the new accounts, and the backfill must run again after a later upgrade.
    if op.get_bind().execute(sa.text("SELECT count(*) FROM staff")).scalar():
        raise RuntimeError("降级到 0005 前请先删除全部工作人员账号（0005 的 staff 表无法保存它们）")
    op.execute("DELETE FROM data_steps WHERE name = '0006_stats_backfill'")
    op.drop_index("ix_reader_days_county_code_day", table_name="reader_days")
    op.drop_table("reader_days")
    op.drop_index("ix_archives_id_place", table_name="archives")
    op.drop_index(op.f("ix_audit_log_action_at"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_actor_id"), table_name="audit_log")
    op.drop_table("qr_codes")
    op.drop_table("stat_snapshots")
    op.drop_table("archive_counts")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_index(op.f("ix_feedback_created_at"))
        batch.drop_index(op.f("ix_feedback_replied_at"))
        batch.drop_index(op.f("ix_feedback_county_code"))
        for column in ("delivery", "channel", "route", "county_code"):
            batch.drop_column(column)
    op.drop_index(op.f("ix_identities_subscribed_at"), table_name="identities")
    # In place, as in upgrade (plain ALTER TABLE … DROP COLUMN, SQLite 3.35+).
    for index in ("ix_archives_institution_code", "ix_archives_key_group_review_on", "ix_archives_name_birth_bidx"):
        op.drop_index(op.f(index), table_name="archives")
    for column in (
        "key_group_review_on",
        "key_group",
        "open_override_by",
        "open_override_at",
        "open_override",
        "name_birth_bidx",
    ):
        op.drop_column("archives", column)
    with op.batch_alter_table("staff") as batch:
        batch.drop_constraint(op.f("fk_staff_identity_id_identities"), type_="foreignkey")
        batch.drop_index(op.f("ix_staff_phone_bidx"))
        batch.drop_constraint(op.f("uq_staff_identity_id"), type_="unique")
        batch.drop_constraint(op.f("uq_staff_public_id"), type_="unique")
        for column in (
            "disabled_at",
            "sms_verified_at",
            "linked_at",
            "identity_id",
            "phone_bidx",
            "key_id",
            "sealed",
            "public_id",
        ):
            batch.drop_column(column)
        batch.add_column(sa.Column("password_hash", sa.String(length=200), nullable=False))
        batch.add_column(sa.Column("username", sa.String(length=64), nullable=False))
        batch.add_column(sa.Column("openid", sa.String(length=64), nullable=True))
        batch.create_unique_constraint(op.f("uq_staff_username"), ["username"])
        batch.create_unique_constraint(op.f("uq_staff_openid"), ["openid"])
