"""events by node and time (clearance analytics per node over a period)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 19:50:00

On PostgreSQL the index is built CONCURRENTLY (outside the migration's transaction), so a production database with
tens of millions of events keeps taking transfers while it builds.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_events_node_event_time"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(NAME, "events", ["node", "event_time"], postgresql_concurrently=True, if_not_exists=True)
    else:
        op.create_index(NAME, "events", ["node", "event_time"], if_not_exists=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(NAME, table_name="events", postgresql_concurrently=True, if_exists=True)
    else:
        op.drop_index(NAME, table_name="events", if_exists=True)
