"""alert stream positions, handed out in commit order

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 12:00:00

The live stream used to resume after the last alert id it sent. PostgreSQL takes an id from its sequence when the row
is inserted, but the row becomes visible when its transaction commits: an alert whose transaction committed after a
later id's was never streamed. `alerts.stream_seq` is the alert's place in commit order, and the stream resumes by it.

- PostgreSQL: a deferred constraint trigger runs at COMMIT; it takes a transaction-level advisory lock, held until the
  commit is complete and visible, and only then takes the next position. Positions are therefore handed out in commit
  order. The holder of the lock is only finishing its commit: its row locks are already held, so it waits for no one.
- SQLite: one writer at a time, so ids are already taken in commit order: the position is the id.

Existing alerts keep their id as their position (they are all committed), and a client that resumes with
`Last-Event-ID` across the upgrade finds its alert where it was. On SQLite, a later batch migration that copies the
`alerts` table drops its trigger: such a migration must create it again (`SQLITE_TRIGGER`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_alerts_stream_seq"
# The advisory lock key of stream positions, 0x5253414C45525453 ("RSALERTS"): beyond the CRC32 keys of the jobs' locks.
POSTGRES_FUNCTION = """
CREATE FUNCTION alerts_stream_position() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Held until this transaction's commit is visible: the next transaction to commit alerts waits here for it.
    PERFORM pg_advisory_xact_lock(5932156930013418579);
    UPDATE alerts SET stream_seq = nextval('alerts_stream_seq_seq') WHERE id = NEW.id AND stream_seq IS NULL;
    RETURN NULL;
END
$$
"""
POSTGRES_TRIGGER = """
CREATE CONSTRAINT TRIGGER alerts_stream_position AFTER INSERT ON alerts
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION alerts_stream_position()
"""
SQLITE_TRIGGER = """
CREATE TRIGGER alerts_stream_position AFTER INSERT ON alerts FOR EACH ROW WHEN NEW.stream_seq IS NULL
BEGIN
    UPDATE alerts SET stream_seq = NEW.id WHERE id = NEW.id;
END
"""


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stream_seq", sa.BigInteger(), nullable=True))
    op.execute("UPDATE alerts SET stream_seq = id")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f(INDEX), ["stream_seq"], unique=True)
    if _postgres():
        op.execute("CREATE SEQUENCE alerts_stream_seq_seq AS bigint OWNED BY alerts.stream_seq")
        op.execute(
            "SELECT setval('alerts_stream_seq_seq', (SELECT coalesce(max(stream_seq), 0) + 1 FROM alerts), false)"
        )
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    if _postgres():
        op.execute("DROP TRIGGER IF EXISTS alerts_stream_position ON alerts")
        op.execute("DROP FUNCTION IF EXISTS alerts_stream_position()")
        op.execute("DROP SEQUENCE IF EXISTS alerts_stream_seq_seq")
    else:
        op.execute("DROP TRIGGER IF EXISTS alerts_stream_position")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(INDEX))
        batch_op.drop_column("stream_seq")


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"
