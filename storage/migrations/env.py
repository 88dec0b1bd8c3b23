"""Alembic environment. Database.upgrade() hands over its connection; the alembic CLI (the
repository's alembic.ini) names a URL, overridable with `-x url=...`."""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import Connection

from storage.db import Database
from storage.models import Base, UtcDateTime

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Revisions must not import the models, which change after them: write the plain column type.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def migrate(connection: Connection) -> None:
    # SQLite alters tables only by copying them: batch mode does that for ALTER-like operations.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def cli_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    return url or config.get_main_option("sqlalchemy.url", "")


connection = config.attributes.get("connection")
if connection is not None:
    migrate(connection)
elif context.is_offline_mode():
    context.configure(url=cli_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    database = Database(cli_url())
    with database.engine.connect() as cli_connection:
        migrate(cli_connection)
    database.dispose()
