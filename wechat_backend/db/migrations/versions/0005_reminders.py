"""reminders: due items, mutes, the daily scan, and clear dates only on records residents may see

Creates ``due_items`` (the next due date per archive and reminder kind), ``notify_mutes`` (the
kinds a person turned off for an archive) and ``due_scans`` (one row per day the scan ran). Adds
``notifications.priority`` (security alerts first) and ``notifications.msgid``. Makes
``service_records.date`` nullable: a record not labelled N keeps its dates sealed only.

The data part needs the keys, which a migration does not hold: ``wechat-backend db upgrade`` runs
it after the schema (``records.dates.hide_restricted_dates``) until it has finished once, which
``data_steps`` records: every record whose label is not N gets its dates sealed into the row and
cleared from the clear columns.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 20:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("service_records") as batch:
        batch.alter_column("date", existing_type=sa.Date(), nullable=True)

    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("msgid", sa.BigInteger(), nullable=True))
        batch.drop_index("ix_notifications_status_due_at")
        batch.create_index("ix_notifications_status_priority_due_at", ["status", "priority", "due_at"])
    op.execute("UPDATE notifications SET priority = 0 WHERE kind = 'binding_added'")

    op.create_table(
        "due_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("archive_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("basis_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["archive_id"], ["archives.id"], name=op.f("fk_due_items_archive_id_archives"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_due_items")),
        sa.UniqueConstraint("archive_id", "kind", name=op.f("uq_due_items_archive_id_kind")),
    )
    op.create_index(op.f("ix_due_items_due_on"), "due_items", ["due_on"])

    op.create_table(
        "notify_mutes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=False),
        sa.Column("archive_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["archive_id"], ["archives.id"], name=op.f("fk_notify_mutes_archive_id_archives"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["identity_id"],
            ["identities.id"],
            name=op.f("fk_notify_mutes_identity_id_identities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_mutes")),
        sa.UniqueConstraint(
            "identity_id", "archive_id", "kind", name=op.f("uq_notify_mutes_identity_id_archive_id_kind")
        ),
    )
    op.create_index(op.f("ix_notify_mutes_archive_id"), "notify_mutes", ["archive_id"])

    op.create_table(
        "data_steps",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_data_steps")),
    )
    op.create_table(
        "due_scans",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_due_scans")),
    )


def downgrade() -> None:
    op.drop_table("due_scans")
    op.drop_table("data_steps")
    op.drop_index(op.f("ix_notify_mutes_archive_id"), table_name="notify_mutes")
    op.drop_table("notify_mutes")
    op.drop_index(op.f("ix_due_items_due_on"), table_name="due_items")
    op.drop_table("due_items")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_index("ix_notifications_status_priority_due_at")
        batch.create_index("ix_notifications_status_due_at", ["status", "due_at"])
        batch.drop_column("msgid")
        batch.drop_column("priority")
    # Records whose dates were sealed only keep them sealed; the clear column cannot be NOT NULL again.
