"""The message each answer was sent as, and who may name an answer's photo: a tap counts only
on its own answer.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain nullable columns: SQLite adds them in place, no copy of the predictions table.
    op.add_column("predictions", sa.Column("answer_chat_id", sa.BigInteger(), nullable=True))
    op.add_column("predictions", sa.Column("answer_message_id", sa.BigInteger(), nullable=True))
    op.create_table(
        "naming_rights",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_naming_rights_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name="fk_naming_rights_prediction_id_predictions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "prediction_id", name="pk_naming_rights"),
    )
    op.create_index("ix_naming_rights_prediction_id", "naming_rights", ["prediction_id"])


def downgrade() -> None:
    op.drop_index("ix_naming_rights_prediction_id", table_name="naming_rights")
    op.drop_table("naming_rights")
    # In place (SQLite >= 3.35): recreating predictions would cascade-delete their feedback.
    with op.batch_alter_table("predictions", recreate="never") as batch:
        batch.drop_column("answer_message_id")
        batch.drop_column("answer_chat_id")
