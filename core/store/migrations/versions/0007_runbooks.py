"""runbooks: numbered per account, with their prompts, plan and step states

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-12 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runbooks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_key", sa.String(length=36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.String(length=36), nullable=False),
        sa.Column("repository_org", sa.String(length=100), nullable=False),
        sa.Column("repository_name", sa.String(length=100), nullable=False),
        sa.Column("prompts", sa.JSON(), nullable=False),
        sa.Column("planned_prompts", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("author_id", sa.String(length=36), nullable=False),
        sa.Column("oneshot", sa.Boolean(), nullable=False),
        sa.Column("pr_mode", sa.String(length=20), nullable=False),
        sa.Column("draft", sa.Boolean(), nullable=False),
        sa.Column("target_branch", sa.String(length=255), nullable=False),
        sa.Column("plan", sa.Text(), nullable=True),
        sa.Column("step_states", sa.JSON(), nullable=False),
        sa.Column("pull_requests", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("workflow_id", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["definitions.id"],
            name=op.f("fk_runbooks_repository_id_definitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_runbooks_author_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runbooks")),
        # Numbers are unique per account: a concurrent create that took one retries.
        sa.UniqueConstraint("account_key", "number", name=op.f("uq_runbooks_account_key")),
    )


def downgrade() -> None:
    op.drop_table("runbooks")
