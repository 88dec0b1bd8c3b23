"""One database behind a URL: the engine, migrations to head, and transactional sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from sqlite3 import Connection as SQLiteConnection
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# How long a SQLite writer waits for another one to finish before failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any fixed number: the PostgreSQL advisory lock that lets one process at a time migrate.
MIGRATION_LOCK = 4_146_500_102


def _sqlite_pragmas(connection: SQLiteConnection, _record: Any) -> None:
    # WAL lets readers go on while the bot writes. In WAL mode synchronous=NORMAL syncs the log
    # at checkpoints rather than at every commit: a power cut may lose the last answers stored,
    # never the database (SQLite's own guarantee). With FULL, the database was a quarter of the
    # bot's CPU samples under load, half of it the commits of each photo's four transactions.
    # SQLite enforces foreign keys (and so ON DELETE CASCADE) only when asked, on every
    # connection.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


class Database:
    """Any SQLAlchemy URL; tested with SQLite files and PostgreSQL through psycopg 3."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        sqlite = self.url.get_backend_name() == "sqlite"
        # Pre-ping: a long-running bot outlives server restarts and idle-connection timeouts
        # (a SQLite file has neither).
        self.engine = create_engine(self.url, pool_pre_ping=not sqlite)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def upgrade(self, revision: str = "head") -> None:
        """Apply the package's Alembic migrations, whatever the working directory."""
        config = Config()
        # ConfigParser would read a "%" in the path as interpolation.
        config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
        with self.engine.begin() as connection:
            if self.url.get_backend_name() == "postgresql":
                # Two bot processes starting together must not both create the tables; the
                # lock goes with the transaction. (SQLite serialises writers by itself.)
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed when the block ends, rolled back on error."""
        with self._sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
