"""relay pushback: an issue pauses itself when the relay refuses, and resumes by itself

Four columns on ``issue``: ``refusal_streak`` (temporary refusals in a row across the
issue's connections), ``relay_reply`` (the relay's last refusal, shown on the dashboard and
by ``digest send``), ``resume_at`` (when the worker resumes a send paused by the relay) and
``pushback_pauses`` (how many such pauses this send has had; each lasts longer).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 21:00:00

"""

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# SQLite's batch copy (downgrade) reflects the tables around issue; SQLAlchemy cannot reflect
# subscriber's lower(email) index there and warns, though that table is not touched.
EXPRESSION_INDEX_WARNING = "Skipped unsupported reflection of expression-based index"
COLUMNS = ("refusal_streak", "relay_reply", "resume_at", "pushback_pauses")


def upgrade():
    # server_default "0": the issues already there get a count; the models set it on insert.
    op.add_column(
        "issue",
        sa.Column("refusal_streak", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("issue", sa.Column("relay_reply", sa.Text(), nullable=True))
    op.add_column("issue", sa.Column("resume_at", sa.DateTime(), nullable=True))
    op.add_column(
        "issue",
        sa.Column("pushback_pauses", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=EXPRESSION_INDEX_WARNING)
        with op.batch_alter_table("issue") as batch:
            for name in reversed(COLUMNS):
                batch.drop_column(name)
