"""Photos sent from the camera page inside Telegram, by the page's key for each.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webapp_sends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=True),
        sa.Column("page_top5", sa.JSON(), nullable=False),
        sa.Column("page_verdict", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_webapp_sends_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name="fk_webapp_sends_prediction_id_predictions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_webapp_sends"),
        sa.UniqueConstraint("user_id", "key", name="uq_webapp_sends_user_id_key"),
    )
    op.create_index("ix_webapp_sends_prediction_id", "webapp_sends", ["prediction_id"])


def downgrade() -> None:
    op.drop_index("ix_webapp_sends_prediction_id", table_name="webapp_sends")
    op.drop_table("webapp_sends")
