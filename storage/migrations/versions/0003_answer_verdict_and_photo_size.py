"""Each prediction keeps its verdict; each photo the size it was sent at.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: answers and photos stored before this migration did not record them.
    op.add_column("predictions", sa.Column("verdict", sa.String(16), nullable=True))
    op.add_column("photos", sa.Column("width", sa.Integer(), nullable=True))
    op.add_column("photos", sa.Column("height", sa.Integer(), nullable=True))


def downgrade() -> None:
    # In place (SQLite >= 3.35 drops columns): recreating the tables would cascade-delete every
    # prediction and feedback row through their foreign keys.
    with op.batch_alter_table("photos", recreate="never") as batch:
        batch.drop_column("height")
        batch.drop_column("width")
    with op.batch_alter_table("predictions", recreate="never") as batch:
        batch.drop_column("verdict")
