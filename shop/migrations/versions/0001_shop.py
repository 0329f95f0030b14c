"""products, reservations, orders, order items, idempotency keys, outbox, owned buckets, shard map,
fulfilled events; the id generator and the write fence

Revision ID: 0001
Revises:
"""

from alembic import op

from shop.adapters.schema import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Instagram's id scheme, in the database so that every id a server hands out for a bucket is
# unique without coordination: 41 bits of milliseconds | 10 bits of bucket | 12 bits of sequence.
NEXT_ID = """
CREATE FUNCTION shop_next_id(b integer) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ms bigint := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1767225600000;
BEGIN
    RETURN (ms << 22) | (b::bigint << 12) | (nextval('shop_id_seq') % 4096);
END $$
"""

# The write fence, called first in every write transaction. A shared advisory lock per bucket
# that a move takes exclusively while it blocks the bucket ("moving"), then ownership as this
# server sees it ("moved" once the bucket left). Each statement in a VOLATILE function takes a
# fresh snapshot, so the ownership read comes after the lock, never before it.
FENCE = """
CREATE FUNCTION shop_fence(b integer) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock_shared(727402, b) THEN
        RETURN 'moving';
    END IF;
    PERFORM 1 FROM owned_buckets WHERE bucket = b;
    IF NOT FOUND THEN
        RETURN 'moved';
    END IF;
    RETURN 'ok';
END $$
"""


# The tables of this revision, created from the schema module. Hazard: a later change to one of
# their columns must come with a revision that alters it, and this one then creates the new shape
# on a fresh database (so that revision must tolerate it); new tables get their own revision.
TABLES = ("products", "reservations", "orders", "order_items", "idempotency_keys", "outbox", "owned_buckets",
          "shard_map", "fulfilled_events")


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[metadata.tables[name] for name in TABLES])
    op.create_index("products_by_price", "products", ["price_cents", "id"])
    op.create_index("products_by_category", "products", ["category", "price_cents", "id"])
    op.create_index("products_by_bucket", "products", ["bucket"])
    op.create_index("reservations_held", "reservations", ["expires_at"], postgresql_where="status = 'held'")
    op.create_index("reservations_by_bucket", "reservations", ["bucket"])
    op.create_index("orders_by_user", "orders", ["user_name", "id"])
    op.create_index("orders_pending", "orders", ["created_at"], postgresql_where="status = 'pending'")
    op.create_index("orders_by_bucket", "orders", ["bucket"])
    op.create_index("order_items_by_bucket", "order_items", ["bucket"])
    op.create_index("idempotency_keys_by_bucket", "idempotency_keys", ["bucket"])
    op.execute("CREATE SEQUENCE shop_id_seq")
    op.execute(NEXT_ID)
    op.execute(FENCE)


def downgrade() -> None:
    op.execute("DROP FUNCTION shop_fence(integer)")
    op.execute("DROP FUNCTION shop_next_id(integer)")
    op.execute("DROP SEQUENCE shop_id_seq")
    metadata.drop_all(op.get_bind(), tables=[metadata.tables[name] for name in TABLES])
