"""Model files in the database: each version's folder, every file content stored once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_files",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_model_files"),
    )
    op.create_table(
        "model_version_files",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name="fk_model_version_files_version_id_model_versions",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["model_files.sha256"],
            name="fk_model_version_files_sha256_model_files",
        ),
        sa.PrimaryKeyConstraint("version_id", "name", name="pk_model_version_files"),
    )
    op.create_index("ix_model_version_files_sha256", "model_version_files", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_model_version_files_sha256", table_name="model_version_files")
    op.drop_table("model_version_files")
    op.drop_table("model_files")
