"""transactional mail keeps its retry window like a delivery

One retry rule for every mail: the window (``MAILER_RETRY_FOR``) counts from the first
temporary failure and is kept on the row as ``retry_until``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 20:50:00

"""

import warnings

import sqlalchemy as sa
from alembic import op

# SQLite's batch copy reflects the tables transactional_mail refers to; SQLAlchemy cannot
# reflect subscriber's lower(email) index there and warns, though that table is not touched.
EXPRESSION_INDEX_WARNING = "Skipped unsupported reflection of expression-based index"

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("transactional_mail", sa.Column("retry_until", sa.DateTime(), nullable=True))


def downgrade():
    # Batch mode: SQLite before 3.35 cannot DROP a column, so Alembic copies the table.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=EXPRESSION_INDEX_WARNING)
        with op.batch_alter_table("transactional_mail") as batch:
            batch.drop_column("retry_until")
