-- Typo search through a lexicon of the words in product names (docs/adr/0012-search-candidates-and-typo-lexicon.md).
-- A trigram scan of every name cost 25-60 ms a typo query on 1M products; the distinct words are a few
-- hundred (a real catalog: tens of thousands), so typos are matched against words, and the products
-- holding the corrected words are found through the full-text index.
CREATE TABLE search_words (
    word    text NOT NULL,
    lexeme  text NOT NULL,
    PRIMARY KEY (word, lexeme)
);
CREATE INDEX search_words_trgm_idx ON search_words USING gin (word gin_trgm_ops);
-- The corrected words are looked up in names only; the lexemes of search_vector cannot say which
-- came from the name without reading the row (a word common in descriptions cost 100k+ rechecks).
CREATE INDEX products_name_lexemes_idx ON products USING gin (to_tsvector('english', name));

-- The alphanumeric words of product names, each with its full-text lexeme (stop words have none and
-- are left out). Words are only ever added: a word no product uses any more costs a row, never a
-- wrong result (products are still found through their own search_vector).
CREATE FUNCTION add_search_words_v1(names text[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO search_words (word, lexeme)
    SELECT w.word, l.lexeme
    FROM (
        SELECT DISTINCT word
        FROM unnest(names) AS n (name), unnest(regexp_split_to_array(lower(n.name), '[^[:alnum:]]+')) AS word
        WHERE word <> ''
    ) AS w
    CROSS JOIN LATERAL unnest(to_tsvector('english', w.word)) AS l
    WHERE NOT EXISTS (SELECT FROM search_words AS s WHERE s.word = w.word)
    ORDER BY w.word, l.lexeme  -- one lock order: two writers adding the same new words cannot deadlock
    ON CONFLICT DO NOTHING
$$;

-- Per statement: a COPY of 20,000 products adds its new words in one pass.
CREATE FUNCTION search_words_on_insert_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM add_search_words_v1(ARRAY(SELECT name FROM new_products));
    RETURN NULL;
END
$$;
CREATE TRIGGER products_search_words_insert AFTER INSERT ON products
    REFERENCING NEW TABLE AS new_products FOR EACH STATEMENT EXECUTE FUNCTION search_words_on_insert_v1();

-- Renames only: stock and price updates (checkout) do not call it.
CREATE FUNCTION search_words_on_rename_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM add_search_words_v1(ARRAY[NEW.name]);
    RETURN NULL;
END
$$;
CREATE TRIGGER products_search_words_rename AFTER UPDATE OF name ON products
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name) EXECUTE FUNCTION search_words_on_rename_v1();

SELECT add_search_words_v1(ARRAY(SELECT name FROM products));

-- Nothing scans names by trigram any more.
DROP INDEX products_name_trgm_idx;
