"""the weekly issue's lifecycle: extra issues, cancelled weeks rebuilt, a new feed's backlog

``issue.kind`` is "scheduled" (the weekly run's issue) or "extra" (sent by hand ahead of its
run); only a live scheduled issue holds its period (a partial unique index replaces the
unique period), so a manual send or a cancel never uses up a week. ``item.backlog`` marks
items a new feed published long before it was added.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 21:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LIVE_SCHEDULED = "kind = 'scheduled' AND status <> 'cancelled'"


def upgrade():
    with op.batch_alter_table("issue") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="scheduled")
        )
        batch.drop_constraint("uq_issue_period", type_="unique")
    op.create_index(
        "uq_issue_scheduled_period",
        "issue",
        ["period"],
        unique=True,
        sqlite_where=sa.text(LIVE_SCHEDULED),
        postgresql_where=sa.text(LIVE_SCHEDULED),
    )
    with op.batch_alter_table("item") as batch:
        batch.add_column(
            sa.Column("backlog", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade():
    # Several issues may share a period by now: keep the lowest-numbered live one's claim by
    # giving the others a period of their own before the unique constraint comes back.
    op.execute(
        "UPDATE issue SET period = period || '-' || CAST(number AS VARCHAR(12)) "
        "WHERE id NOT IN (SELECT MIN(id) FROM issue GROUP BY period)"
    )
    with op.batch_alter_table("item") as batch:
        batch.drop_column("backlog")
    op.drop_index("uq_issue_scheduled_period", table_name="issue")
    with op.batch_alter_table("issue") as batch:
        batch.create_unique_constraint("uq_issue_period", ["period"])
        batch.drop_column("kind")
