-- lock_idempotency_keys --
-- Serialises concurrent requests carrying the same Idempotency-Key until this transaction ends;
-- $1 sorted, so two batches sharing keys take their locks in the same order (no deadlock).
SELECT count(pg_advisory_xact_lock(hashtextextended(k.key, 7)))
FROM unnest($1::text[]) WITH ORDINALITY AS k(key, n);

-- orders_by_keys --
-- Previous orders placed with these Idempotency-Keys, and the hash of the request that placed each.
SELECT id, idempotency_key, request_hash FROM orders WHERE idempotency_key = ANY($1::text[]);

-- lock_products --
-- The truth for a checkout: current price and stock, row-locked in id order so that concurrent
-- checkouts of overlapping baskets queue instead of deadlocking.
SELECT id, price_cents, currency, inventory, archived
FROM products
WHERE id = ANY($1::bigint[])
ORDER BY id
FOR UPDATE;

-- take_stock --
-- Decrement stock by what the batch placed (already locked and checked); each product's version
-- moves on once per batch.
UPDATE products AS p
SET inventory = p.inventory - l.quantity, version = p.version + 1, updated_at = now()
FROM unnest($1::bigint[], $2::int[]) AS l(product_id, quantity)
WHERE p.id = l.product_id AND p.inventory >= l.quantity
RETURNING p.id, p.version, p.category_id;

-- next_order_ids --
-- Ids for the orders of one batch, taken before the insert so each checkout knows its own.
SELECT nextval(pg_get_serial_sequence('orders', 'id')) AS id FROM generate_series(1, $1);

-- insert_orders --
-- The batch's order headers, each at the total actually charged.
INSERT INTO orders (id, idempotency_key, request_hash, total_cents, currency)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bigint[], $5::text[])
RETURNING id, created_at;

-- insert_order_lines --
-- One line per product per order, at the price charged (the primary's price under lock).
INSERT INTO order_lines (order_id, line_no, product_id, quantity, price_cents)
SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::int[], $5::bigint[]);

-- insert_stock_events --
-- One outbox event ($1: its type) per product whose stock changed, so displayed inventory is
-- invalidated; the highest id rings the doorbell after COMMIT. The payload is app/contracts/events.py's ProductChanged.
WITH events AS (
    INSERT INTO outbox (event_type, aggregate_id, payload)
    SELECT $1, e.id,
           jsonb_build_object('id', e.id, 'version', e.version, 'category_id', e.category_id,
                              'old_category_id', e.category_id)
    FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS e(id, version, category_id)
    RETURNING id
)
SELECT max(id) FROM events;

-- get_order --
-- A decision read: the order as recorded, from the primary.
SELECT id, total_cents, currency, created_at FROM orders WHERE id = $1;

-- get_order_lines --
-- The lines of one order, in the order they were placed.
SELECT product_id, quantity, price_cents FROM order_lines WHERE order_id = $1 ORDER BY line_no;
