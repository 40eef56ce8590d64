"""bounces and complaints: one row per event, and the events already taken

``bounce``: each hard bounce, soft bounce or complaint matched to a subscriber, from a
delivery report, a feedback-loop report or a provider webhook. ``bounce_receipt``: the
webhook tokens, event ids and report ids already taken, so that a replay changes nothing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 21:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "bounce",
        sa.Column("id", ID, nullable=False),
        sa.Column("subscriber_id", ID, nullable=False),
        sa.Column("delivery_id", ID, nullable=True),
        sa.Column("mail_id", ID, nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("status_code", sa.String(length=16), nullable=True),
        sa.Column("diagnostic", sa.String(length=1000), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
            name=op.f("fk_bounce_subscriber_id_subscriber"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["delivery.id"],
            name=op.f("fk_bounce_delivery_id_delivery"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["mail_id"],
            ["transactional_mail.id"],
            name=op.f("fk_bounce_mail_id_transactional_mail"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce")),
    )
    # Plain CREATE INDEX (no batch copy), which SQLite supports as it is.
    op.create_index("ix_bounce_kind_received", "bounce", ["kind", "received_at"])
    op.create_index(op.f("ix_bounce_subscriber_id"), "bounce", ["subscriber_id"])
    op.create_index(op.f("ix_bounce_delivery_id"), "bounce", ["delivery_id"])

    op.create_table(
        "bounce_receipt",
        sa.Column("id", ID, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_receipt")),
        sa.UniqueConstraint("source", "key", name="uq_bounce_receipt_source_key"),
    )


def downgrade():
    op.drop_table("bounce_receipt")
    op.drop_index(op.f("ix_bounce_delivery_id"), table_name="bounce")
    op.drop_index(op.f("ix_bounce_subscriber_id"), table_name="bounce")
    op.drop_index("ix_bounce_kind_received", table_name="bounce")
    op.drop_table("bounce")
