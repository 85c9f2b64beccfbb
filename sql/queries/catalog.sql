-- get_product --
-- A display read of one product; archived products are not displayed.
SELECT id, sku, name, description, category_id, price_cents, currency, inventory, version, updated_at
FROM products
WHERE id = $1 AND NOT archived;

-- get_products --
-- ops/cache check: the current (unarchived) rows of many products, to compare with their cache entries.
SELECT id, sku, name, description, category_id, price_cents, currency, inventory, version, updated_at
FROM products
WHERE id = ANY($1::bigint[]) AND NOT archived;

-- product_state --
-- Why a conditional write matched nothing: missing, archived, or a different version.
SELECT version, archived, inventory FROM products WHERE id = $1;

-- insert_product --
-- Creates a product at version 1.
INSERT INTO products (sku, name, description, category_id, price_cents, currency, inventory)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id, sku, name, description, category_id, price_cents, currency, inventory, version, updated_at,
          category_id AS old_category_id;

-- update_product --
-- Full or partial update (NULL keeps the current value), optionally only at a version If-Match names ($8).
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
WHERE p.id = old.id AND ($8::bigint[] IS NULL OR p.version = ANY($8::bigint[]))
RETURNING p.id, p.sku, p.name, p.description, p.category_id, p.price_cents, p.currency, p.inventory,
          p.version, p.updated_at, old.category_id AS old_category_id;

-- adjust_inventory --
-- Relative and atomic: never a read-modify-write in Python; matches nothing if stock would go below
-- zero, or if If-Match ($3) names other versions.
UPDATE products
SET inventory = inventory + $2, version = version + 1, updated_at = now()
WHERE id = $1 AND NOT archived AND inventory + $2 >= 0 AND ($3::bigint[] IS NULL OR version = ANY($3::bigint[]))
RETURNING id, sku, name, description, category_id, price_cents, currency, inventory, version, updated_at,
          category_id AS old_category_id;

-- archive_product --
-- Archives (soft-deletes) a product; later display reads answer 404.
UPDATE products
SET archived = true, version = version + 1, updated_at = now()
WHERE id = $1 AND NOT archived AND ($2::bigint[] IS NULL OR version = ANY($2::bigint[]))
RETURNING id, sku, name, description, category_id, price_cents, currency, inventory, version, updated_at,
          category_id AS old_category_id;

-- insert_outbox_event --
-- The event rides in the write's transaction; the doorbell rings with its id after COMMIT (docs/adr/0016).
INSERT INTO outbox (event_type, aggregate_id, payload) VALUES ($1, $2, $3::jsonb) RETURNING id;

-- commit_lsn --
-- Read after COMMIT on the same connection: at or past the end of the commit record (docs/consistency.md, rule 2).
SELECT pg_current_wal_insert_lsn()::text;

-- category_exists_read --
-- Display path: does the category exist (404 otherwise)?
SELECT EXISTS (SELECT 1 FROM categories WHERE id = $1);

-- category_products --
-- One keyset page of a category, by id; $3 = limit + 1 tells whether there is a next page.
SELECT id, sku, name, description, category_id, price_cents, currency, inventory, version, updated_at
FROM products
WHERE category_id = $1 AND NOT archived AND id > $2
ORDER BY id
LIMIT $3;

-- search_products --
-- Ranked full text, then (first page only, when it matches nothing) the typo fallback: one round trip.
-- $1 normalised text; $2/$3 the last page's rank and id (or NULL); $4 the limit; $5 the cursor's mode
-- ('fulltext' or 'fuzzy'; NULL on a first page). Keyset on (rank desc, id) in either mode.
-- Each mode ranks a bounded candidate set, the first matches in table order: ranking reads every
-- candidate's row (about one heap page each; full text ranks 1,000), and typo ranking costs ~10 us a
-- row (the fallback ranks 500; docs/adr/0012-search-candidates-and-typo-lexicon.md). The tsqueries are
-- MATERIALIZED so the plan never depends on the words: always the GIN bitmap scan, whose table order
-- keeps the candidate set the same from page to page (a synchronised or parallel seq scan would not).
WITH q AS MATERIALIZED (
    SELECT websearch_to_tsquery('english', $1) AS query
),
fulltext AS (
    SELECT 'fulltext' AS mode, hits.*
    FROM (
        SELECT c.*, ts_rank_cd(c.search_vector, q.query)::float4 AS rank
        FROM (
            SELECT p.*
            FROM products AS p, q
            WHERE p.search_vector @@ q.query AND NOT p.archived AND $5::text IS DISTINCT FROM 'fuzzy'
            LIMIT 1000
        ) AS c, q
    ) AS hits
    WHERE $2::float4 IS NULL OR hits.rank < $2::float4 OR (hits.rank = $2::float4 AND hits.id > $3)
    ORDER BY hits.rank DESC, hits.id
    LIMIT $4
),
-- Typos: each query word becomes the name words most like it (trigram similarity to search_words, within
-- 0.1 of the best: "troel" is trowel, not also travel), as lexemes found in names through
-- products_name_lexemes_idx; a word like none drops out. The threshold below is still the word
-- similarity of the whole query to the name.
corrected AS MATERIALIZED (
    SELECT string_agg('(' || t.alternatives || ')', ' & ')::tsquery AS query
    FROM (
        -- lexemes come from alphanumeric words, so quote_literal quotes them as tsquery text does
        SELECT string_agg(DISTINCT quote_literal(m.lexeme), ' | ') AS alternatives
        FROM (
            SELECT term.n, w.lexeme, similarity(term.word, w.word) AS sim,
                   max(similarity(term.word, w.word)) OVER (PARTITION BY term.n) AS best
            FROM unnest(regexp_split_to_array(lower($1), '[^[:alnum:]]+')) WITH ORDINALITY AS term (word, n)
            JOIN search_words AS w ON term.word % w.word
        ) AS m
        WHERE m.sim >= m.best - 0.1
        GROUP BY m.n
    ) AS t
),
fuzzy AS (
    SELECT 'fuzzy' AS mode, hits.*
    FROM (
        SELECT p.*, word_similarity($1, p.name)::float4 AS rank
        FROM products AS p, corrected
        WHERE to_tsvector('english', p.name) @@ corrected.query AND NOT p.archived
        LIMIT 500
    ) AS hits
    -- pg_trgm defines its settings when it loads, which the planner may not have done yet
    WHERE hits.rank >= coalesce(current_setting('pg_trgm.word_similarity_threshold', true)::float4, 0.6)
      AND ($2::float4 IS NULL OR hits.rank < $2::float4 OR (hits.rank = $2::float4 AND hits.id > $3))
    ORDER BY hits.rank DESC, hits.id
    LIMIT $4
)
SELECT mode, id, sku, name, description, category_id, price_cents, currency, inventory, version, updated_at, rank
FROM fulltext
UNION ALL
SELECT mode, id, sku, name, description, category_id, price_cents, currency, inventory, version, updated_at, rank
FROM fuzzy
WHERE $5::text IS DISTINCT FROM 'fulltext' AND NOT EXISTS (SELECT FROM fulltext);

-- top_selling --
-- Best sellers by units over the last $2 days, from order lines.
SELECT p.id, p.sku, p.name, p.description, p.category_id, p.price_cents, p.currency, p.inventory, p.version,
       p.updated_at
FROM (
    SELECT ol.product_id, sum(ol.quantity) AS sold
    FROM order_lines AS ol
    JOIN orders AS o ON o.id = ol.order_id
    WHERE o.created_at >= now() - make_interval(days => $2)
    GROUP BY ol.product_id
    ORDER BY sold DESC, ol.product_id
    LIMIT $1 * 2
) AS s
JOIN products AS p ON p.id = s.product_id AND NOT p.archived
ORDER BY s.sold DESC, p.id
LIMIT $1;

-- co_purchased --
-- Products bought in the same orders as $1, most often first.
SELECT p.id, p.sku, p.name, p.description, p.category_id, p.price_cents, p.currency, p.inventory, p.version,
       p.updated_at
FROM (
    SELECT other.product_id, count(*) AS together
    FROM order_lines AS mine
    JOIN order_lines AS other ON other.order_id = mine.order_id AND other.product_id <> mine.product_id
    WHERE mine.product_id = $1
    GROUP BY other.product_id
    ORDER BY together DESC, other.product_id
    LIMIT $2 * 2
) AS s
JOIN products AS p ON p.id = s.product_id AND NOT p.archived
ORDER BY s.together DESC, p.id
LIMIT $2;

-- category_best_sellers --
-- Recommendation fallback: best sellers of $1's category (then its other products), excluding $1 itself.
SELECT p.id, p.sku, p.name, p.description, p.category_id, p.price_cents, p.currency, p.inventory, p.version,
       p.updated_at
FROM products AS p
LEFT JOIN (
    SELECT ol.product_id, sum(ol.quantity) AS sold
    FROM order_lines AS ol
    JOIN products AS c ON c.id = ol.product_id
    WHERE c.category_id = (SELECT category_id FROM products WHERE id = $1)
    GROUP BY ol.product_id
) AS s ON s.product_id = p.id
WHERE p.category_id = (SELECT category_id FROM products WHERE id = $1) AND p.id <> $1 AND NOT p.archived
ORDER BY coalesce(s.sold, 0) DESC, p.id
LIMIT $2;
