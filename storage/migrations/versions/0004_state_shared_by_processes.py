"""State that bot processes share: pending questions, photo rate limits, instance settings.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def cascading_fk(table: str, column: str, referred: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{referred}.id"], name=f"fk_{table}_{column}_{referred}", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "pending_questions",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        cascading_fk("pending_questions", "user_id", "users"),
        cascading_fk("pending_questions", "prediction_id", "predictions"),
        sa.PrimaryKeyConstraint("user_id", name="pk_pending_questions"),
    )
    op.create_table(
        "photo_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        cascading_fk("photo_requests", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name="pk_photo_requests"),
    )
    op.create_index("ix_photo_requests_user_id_at", "photo_requests", ["user_id", "at"])
    op.create_table(
        "instance_settings",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(1024), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_instance_settings"),
    )


def downgrade() -> None:
    op.drop_table("instance_settings")
    op.drop_index("ix_photo_requests_user_id_at", table_name="photo_requests")
    op.drop_table("photo_requests")
    op.drop_table("pending_questions")
