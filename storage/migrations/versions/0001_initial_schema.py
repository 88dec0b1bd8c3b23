"""Initial schema: users, photos, predictions, feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def created_at() -> sa.Column[object]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def cascading_fk(table: str, column: str, referred: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{referred}.id"], name=f"fk_{table}_{column}_{referred}", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("username", sa.String(64), nullable=True),
        sa.Column("first_name", sa.String(256), nullable=True),
        created_at(),
        sa.Column("excluded_from_training", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
    )
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("embedding_shape", sa.String(32), nullable=False),
        created_at(),
        cascading_fk("photos", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name="pk_photos"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_photos_user_id", "photos", ["user_id"])
    op.create_index("ix_photos_chat_id_message_id", "photos", ["chat_id", "message_id"])
    op.create_index("ix_photos_content_hash", "photos", ["content_hash"])
    op.create_index("ix_photos_created_at", "photos", ["created_at"])

    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("top5", sa.JSON(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        created_at(),
        cascading_fk("predictions", "photo_id", "photos"),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_predictions_photo_id", "predictions", ["photo_id"])

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("species_index", sa.Integer(), nullable=True),
        sa.Column("species", sa.String(256), nullable=True),
        sa.Column("not_a_flower", sa.Boolean(), nullable=False),
        created_at(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        cascading_fk("feedback", "photo_id", "photos"),
        cascading_fk("feedback", "prediction_id", "predictions"),
        cascading_fk("feedback", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.UniqueConstraint("photo_id", "user_id", name="uq_feedback_photo_id_user_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_feedback_prediction_id", "feedback", ["prediction_id"])
    op.create_index("ix_feedback_user_id", "feedback", ["user_id"])


def downgrade() -> None:
    # Indexes go with their tables.
    for table in ("feedback", "predictions", "photos", "users"):
        op.drop_table(table)
