"""audit log: sealed reasons and a tamper-evident HMAC-SM3 chain

Adds to ``audit_log`` the sealed reason (``reason_sealed``, ``key_id``) and the chain columns
(``seq``, ``mac``); creates the chain's head row (``audit_chain``, one row, seq 0) and the
checkpoints retention starts from (``audit_checkpoints``).

Schema only. A migration holds no keys, so the data part is done by the sealer
(``wechat-backend audit seal``, and the worker every few seconds): every row still unsealed —
all rows written before this revision — gets its clear ``reason`` sealed (unless it is one of
``audit.CLEAR_REASONS``) and cleared, then its ``seq`` and ``mac``. Until that has run once, the
old rows keep their reasons in clear. PostgreSQL keeps the old row versions until VACUUM; run
``VACUUM audit_log`` after the first sealing if the clear reasons must be gone from disk too.
A downgrade drops the sealed reasons and the chain (the reasons cannot be put back in clear
without the keys).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("reason_sealed", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("mac", sa.LargeBinary(), nullable=True))
        batch.create_index(batch.f("ix_audit_log_seq"), ["seq"], unique=True)

    head = op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("mac", sa.LargeBinary(), nullable=True),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "mac": None, "sealed_at": None}])

    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("mac", sa.LargeBinary(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tag", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_chain")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index(batch.f("ix_audit_log_seq"))
        batch.drop_column("mac")
        batch.drop_column("seq")
        batch.drop_column("key_id")
        batch.drop_column("reason_sealed")
