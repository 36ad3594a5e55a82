"""approval gates: one row per gate a run opens; approvals belong to one gate

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gates",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("approvers", sa.JSON(), nullable=False),
        sa.Column("rule", sa.String(length=10), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timeout_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("on_timeout", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=36), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_gates_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gates")),
    )
    with op.batch_alter_table("gates", schema=None) as batch_op:
        batch_op.create_index("ix_gates_run_opened", ["run_id", "opened_at"], unique=False)
        batch_op.create_index("ix_gates_status", ["status"], unique=False)

    # Every decision recorded so far was on the start gate (-1). The unique constraint keeps
    # its name (the naming convention names it after its first column) but gains gate_idx.
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("gate_idx", sa.Integer(), nullable=False, server_default="-1")
        )
        batch_op.drop_constraint(batch_op.f("uq_approvals_run_id"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_approvals_run_id"), ["run_id", "gate_idx", "approver_key"]
        )


def downgrade() -> None:
    # The old schema holds one decision per approver and run: only the start gate's fit.
    op.execute("DELETE FROM approvals WHERE gate_idx <> -1")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_approvals_run_id"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_approvals_run_id"), ["run_id", "approver_key"]
        )
        batch_op.drop_column("gate_idx")
    with op.batch_alter_table("gates", schema=None) as batch_op:
        batch_op.drop_index("ix_gates_status")
        batch_op.drop_index("ix_gates_run_opened")
    op.drop_table("gates")
