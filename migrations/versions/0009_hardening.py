"""hardening: admin session tokens, login failures in the database, queued feed refreshes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 21:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN of nullable columns: no batch copy needed, on SQLite either.
    # Existing sessions end: their stored id has no token, so they no longer match.
    op.add_column("admin_user", sa.Column("session_token", sa.String(length=64), nullable=True))
    op.add_column("feed", sa.Column("refresh_requested_at", sa.DateTime(), nullable=True))
    op.create_table(
        "login_failure",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("ip_address", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failure")),
    )
    op.create_index(
        "ix_login_failure_email_created", "login_failure", ["email", "created_at"], unique=False
    )
    op.create_index(
        "ix_login_failure_ip_created", "login_failure", ["ip_address", "created_at"], unique=False
    )


def downgrade():
    op.drop_index("ix_login_failure_ip_created", table_name="login_failure")
    op.drop_index("ix_login_failure_email_created", table_name="login_failure")
    op.drop_table("login_failure")
    with op.batch_alter_table("feed") as batch:
        batch.drop_column("refresh_requested_at")
    with op.batch_alter_table("admin_user") as batch:
        batch.drop_column("session_token")
