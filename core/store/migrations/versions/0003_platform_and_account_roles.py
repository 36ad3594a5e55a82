"""platform and account roles apart; a callback signing key per account

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 22:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("account_role", sa.String(length=20), nullable=True))
        batch.alter_column("role", existing_type=sa.String(length=20), nullable=True)
    # A user of an account held one role for everything; it becomes their account role, and
    # they keep no platform role (an admin gives one back where it was meant).
    op.execute("UPDATE users SET account_role = role, role = NULL WHERE account_id IS NOT NULL")
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("callback_secret_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("callback_secret_id")
    op.execute("UPDATE users SET role = COALESCE(account_role, 'viewer') WHERE role IS NULL")
    with op.batch_alter_table("users") as batch:
        batch.alter_column("role", existing_type=sa.String(length=20), nullable=False)
        batch.drop_column("account_role")
