"""signup requests; confirmation mails built by the worker

The web signup now stores one ``signup_request`` row and the worker does the rest, and a
queued transactional mail may wait without a body until the worker builds it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 14:55:00

"""

import warnings

import sqlalchemy as sa
from alembic import op

# SQLite's batch copy reflects the tables transactional_mail refers to; SQLAlchemy cannot
# reflect subscriber's lower(email) index there and warns, though that table is not touched.
EXPRESSION_INDEX_WARNING = "Skipped unsupported reflection of expression-based index"


def _alter_body(nullable: bool) -> None:
    # Batch mode: SQLite cannot ALTER a column, so Alembic copies the table (rows kept).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=EXPRESSION_INDEX_WARNING)
        with op.batch_alter_table("transactional_mail") as batch:
            batch.alter_column("body", existing_type=sa.LargeBinary(), nullable=nullable)


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "signup_request",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("source", sa.String(length=512), nullable=True),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_request")),
    )
    _alter_body(nullable=True)


def downgrade():
    # The older code cannot send a mail without a body: such queued mails are dropped (their
    # subscribers stay pending and can ask for a new link), and so are unhandled signups.
    op.execute("DELETE FROM transactional_mail WHERE body IS NULL")
    _alter_body(nullable=False)
    op.drop_table("signup_request")
