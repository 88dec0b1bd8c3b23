"""Albums answered as one plant, and each user's language.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def cascading_fk(table: str, column: str, referred: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{referred}.id"], name=f"fk_{table}_{column}_{referred}", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "albums",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("media_group_id", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("top5", sa.JSON(), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("left_out", sa.JSON(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        cascading_fk("albums", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name="pk_albums"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_albums_user_id", "albums", ["user_id"])
    op.create_table(
        "album_predictions",
        sa.Column("album_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=False),
        cascading_fk("album_predictions", "album_id", "albums"),
        cascading_fk("album_predictions", "prediction_id", "predictions"),
        sa.PrimaryKeyConstraint("album_id", "prediction_id", name="pk_album_predictions"),
    )
    op.create_index("ix_album_predictions_prediction_id", "album_predictions", ["prediction_id"])
    # A plain new column: SQLite adds it in place, no copy of the users table.
    op.add_column("users", sa.Column("language", sa.String(8), nullable=True))


def downgrade() -> None:
    # In place (SQLite >= 3.35): recreating users would cascade-delete everything of theirs.
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.drop_column("language")
    op.drop_index("ix_album_predictions_prediction_id", table_name="album_predictions")
    op.drop_table("album_predictions")
    op.drop_index("ix_albums_user_id", table_name="albums")
    op.drop_table("albums")
