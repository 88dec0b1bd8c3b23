"""The identifiers' queue: photos their photographers asked people to name, and the answers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identification_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.BigInteger(), nullable=True),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_message_id", sa.BigInteger(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("species_index", sa.Integer(), nullable=True),
        sa.Column("species", sa.String(256), nullable=True),
        sa.Column("new_species_id", sa.Integer(), nullable=True),
        sa.Column("not_a_flower", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"],
            ["photos.id"],
            name="fk_identification_requests_photo_id_photos",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name="fk_identification_requests_prediction_id_predictions",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["new_species_id"],
            ["new_species.id"],
            name="fk_identification_requests_new_species_id_new_species",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_identification_requests"),
        sa.UniqueConstraint("photo_id", name="uq_identification_requests_photo_id"),
        sqlite_autoincrement=True,
    )
    for column in ("prediction_id", "asked_at", "confirmed_at"):
        op.create_index(f"ix_identification_requests_{column}", "identification_requests", [column])
    op.create_table(
        "identifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("identifier_id", sa.BigInteger(), nullable=False),
        sa.Column("species_index", sa.Integer(), nullable=True),
        sa.Column("species", sa.String(256), nullable=True),
        sa.Column("new_species_id", sa.Integer(), nullable=True),
        sa.Column("not_a_flower", sa.Boolean(), nullable=False),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["identification_requests.id"],
            name="fk_identifications_request_id_identification_requests",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["identifier_id"],
            ["users.id"],
            name="fk_identifications_identifier_id_users",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["new_species_id"],
            ["new_species.id"],
            name="fk_identifications_new_species_id_new_species",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_identifications"),
        sa.UniqueConstraint(
            "request_id", "identifier_id", name="uq_identifications_request_id_identifier_id"
        ),
    )
    op.create_index("ix_identifications_identifier_id", "identifications", ["identifier_id"])


def downgrade() -> None:
    op.drop_index("ix_identifications_identifier_id", table_name="identifications")
    op.drop_table("identifications")
    for column in ("prediction_id", "asked_at", "confirmed_at"):
        op.drop_index(f"ix_identification_requests_{column}", table_name="identification_requests")
    op.drop_table("identification_requests")
