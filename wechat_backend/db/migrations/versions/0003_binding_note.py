"""bindings: a private note per binding (备注, e.g. 大宝), sealed

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 17:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bindings") as batch:
        # {"note": "..."}: set by whoever bound, shown only to them; aad "binding:<public_id>".
        batch.add_column(sa.Column("sealed", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bindings") as batch:
        batch.drop_column("key_id")
        batch.drop_column("sealed")
