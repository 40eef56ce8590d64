"""topics: what each subscriber gets, pauses, unsubscribe reasons, issue variants

Subscribers choose news, openings or both (``subscriber.sections``, also kept on the signup
request and the consent event) and may pause (``paused_until``); a consent event may carry the
reason someone left; an issue keeps one rendering per single topic (``issue_variant``); a job
opening keeps its pay when the feed gives it (``item.pay``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 21:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BOTH = "news,openings"
DROPPED = (
    ("consent_event", "reason"),
    ("consent_event", "sections"),
    ("signup_request", "sections"),
    ("subscriber", "paused_until"),
    ("subscriber", "sections"),
    ("item", "pay"),
)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.add_column(
        "subscriber",
        sa.Column("sections", sa.String(length=32), nullable=False, server_default=BOTH),
    )
    op.add_column("subscriber", sa.Column("paused_until", sa.DateTime(), nullable=True))
    op.add_column("signup_request", sa.Column("sections", sa.String(length=32), nullable=True))
    op.add_column("consent_event", sa.Column("sections", sa.String(length=32), nullable=True))
    op.add_column("consent_event", sa.Column("reason", sa.String(length=32), nullable=True))
    op.add_column("item", sa.Column("pay", sa.String(length=128), nullable=True))
    op.create_table(
        "issue_variant",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("issue_id", BIG_ID, nullable=False),
        sa.Column("sections", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("preheader", sa.String(length=512), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issue.id"],
            name=op.f("fk_issue_variant_issue_id_issue"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_variant")),
        sa.UniqueConstraint("issue_id", "sections", name="uq_issue_variant_sections"),
    )


def downgrade():
    op.drop_table("issue_variant")
    for table, column in DROPPED:
        # SQLite (3.35 and later) drops a column in place: Alembic's batch mode would copy
        # the table and lose subscriber's lower(email) index, which it cannot reflect.
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        else:
            op.drop_column(table, column)
