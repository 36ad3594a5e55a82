"""labels of the pull requests of repositories whose forge is local

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Pull requests recorded before labels existed have none.
    with op.batch_alter_table("forge_pull_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("labels", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("forge_pull_requests", schema=None) as batch_op:
        batch_op.drop_column("labels")
