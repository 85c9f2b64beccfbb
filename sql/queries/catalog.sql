-- get_product --
-- A display read of one product; archived products are not displayed.
SELECT id, sku, name, description, category_id, price_cents, currency, inventory, version, updated_at
FROM products
WHERE id = $1 AND NOT archived;

-- product_state --
-- Why a conditional write matched nothing: missing, archived, or a different version.
SELECT version, archived, inventory FROM products WHERE id = $1;

-- category_exists --
-- Validates a category reference before a write, for a clear 4xx instead of an FK error.
SELECT EXISTS (SELECT 1 FROM categories WHERE id = $1);

-- insert_product --
-- Creates a product at version 1.
INSERT INTO products (sku, name, description, category_id, price_cents, currency, inventory)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id, sku, name, description, category_id, price_cents, currency, inventory, version, updated_at,
          category_id AS old_category_id;

-- update_product --
-- Full or partial update (NULL keeps the current value), optionally only at the version in If-Match ($8).
WITH old AS (
    SELECT id, category_id FROM products WHERE id = $1 AND NOT archived FOR UPDATE
)
UPDATE products AS p
SET sku = COALESCE($2, p.sku),
    name = COALESCE($3, p.name),
    description = COALESCE($4, p.description),
    category_id = COALESCE($5, p.category_id),
    price_cents = COALESCE($6, p.price_cents),
    currency = COALESCE($7, p.currency),
    version = p.version + 1,
    updated_at = now()
FROM old
WHERE p.id = old.id AND ($8::bigint IS NULL OR p.version = $8)
RETURNING p.id, p.sku, p.name, p.description, p.category_id, p.price_cents, p.currency, p.inventory,
          p.version, p.updated_at, old.category_id AS old_category_id;

-- adjust_inventory --
-- Relative and atomic: never a read-modify-write in Python; matches nothing if stock would go below zero.
UPDATE products
SET inventory = inventory + $2, version = version + 1, updated_at = now()
WHERE id = $1 AND NOT archived AND inventory + $2 >= 0
RETURNING id, sku, name, description, category_id, price_cents, currency, inventory, version, updated_at,
          category_id AS old_category_id;

-- archive_product --
-- Archives (soft-deletes) a product; later display reads answer 404.
UPDATE products
SET archived = true, version = version + 1, updated_at = now()
WHERE id = $1 AND NOT archived AND ($2::bigint IS NULL OR version = $2)
RETURNING id, sku, name, description, category_id, price_cents, currency, inventory, version, updated_at,
          category_id AS old_category_id;

-- insert_outbox_event --
-- The event rides in the write's transaction; the NOTIFY is only a wake-up hint and fires at COMMIT.
WITH event AS (
    INSERT INTO outbox (event_type, aggregate_id, payload) VALUES ($1, $2, $3::jsonb) RETURNING id
)
SELECT event.id, pg_notify('outbox', event.id::text) FROM event;

-- commit_lsn --
-- Read after COMMIT on the same connection: at or past the end of the commit record (DESIGN.md 3.2).
SELECT pg_current_wal_insert_lsn()::text;
