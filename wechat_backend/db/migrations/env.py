"""Alembic environment: migrations always run on a connection handed in by db/migrate.py."""

from alembic import context

from wechat_backend.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("请使用 `wechat-backend db upgrade` 执行数据库迁移")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
