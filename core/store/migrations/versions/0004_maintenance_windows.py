"""maintenance windows of the Automations API

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 09:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recurring", sa.String(length=200), nullable=True),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("autonomy_override", sa.String(length=20), nullable=False),
        sa.Column("override_active", sa.Boolean(), nullable=True),
        sa.Column("override_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
    )


def downgrade() -> None:
    op.drop_table("maintenance_windows")
