"""shop_raise(message): a statement that must abort itself (a fenced write's undoable half) calls it

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# SQLSTATE SD001 ("SD": the shop's own class), so that the adapter can tell it from other errors.
RAISE = """
CREATE FUNCTION shop_raise(message text) RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = message, ERRCODE = 'SD001';
END $$
"""


def upgrade() -> None:
    op.execute(RAISE)


def downgrade() -> None:
    op.execute("DROP FUNCTION shop_raise(text)")
