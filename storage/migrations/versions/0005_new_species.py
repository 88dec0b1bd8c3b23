"""Species users name that the model does not know yet, and feedback naming them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "new_species",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merged_into_id"], ["new_species.id"], name="fk_new_species_merged_into_id_new_species"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_new_species"),
        sa.UniqueConstraint("key", name="uq_new_species_key"),
        sqlite_autoincrement=True,
    )
    # The feedback table has no children, so SQLite's copy-and-swap (needed to add a foreign
    # key there) loses nothing.
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("new_species_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_feedback_new_species_id_new_species", "new_species", ["new_species_id"], ["id"]
        )
        batch.create_index("ix_feedback_new_species_id", ["new_species_id"])


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_index("ix_feedback_new_species_id")
        batch.drop_constraint("fk_feedback_new_species_id_new_species", type_="foreignkey")
        batch.drop_column("new_species_id")
    op.drop_table("new_species")
