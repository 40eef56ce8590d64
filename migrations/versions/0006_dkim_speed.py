"""the preflight result stored with the issue

``digest send`` of an unchanged built issue reads the stored preflight (SpamAssassin
included) instead of running it again: ``preflight`` (JSON), ``preflight_key`` (SHA-256 of
what it depends on) and ``preflight_at``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 21:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("issue", sa.Column("preflight_key", sa.String(length=64), nullable=True))
    op.add_column("issue", sa.Column("preflight", sa.Text(), nullable=True))
    op.add_column("issue", sa.Column("preflight_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("issue") as batch:
        batch.drop_column("preflight_at")
        batch.drop_column("preflight")
        batch.drop_column("preflight_key")
