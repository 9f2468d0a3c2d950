-- LAKE store: cleaned, typed, deduplicated ratings; every rejected raw row kept with its reason.
-- For every batch: raw rows = lake_ratings rows + lake_rejects rows. Nothing is ever deleted
-- except by re-materializing the same batch, which replaces it.

CREATE TABLE IF NOT EXISTS lake_ratings (
    batch     INTEGER          NOT NULL,  -- -1 = bootstrap slice
    seq       BIGINT           NOT NULL,
    user_id   BIGINT           NOT NULL,
    movie_id  BIGINT           NOT NULL,
    rating    DOUBLE PRECISION NOT NULL,
    timestamp BIGINT           NOT NULL   -- Unix epoch seconds
);

CREATE TABLE IF NOT EXISTS lake_rejects (
    batch     INTEGER NOT NULL,
    seq       BIGINT  NOT NULL,
    line_no   BIGINT  NOT NULL,
    user_id   BIGINT,            -- as the raw store has them: NULL where the text was no number
    movie_id  BIGINT,
    rating    DOUBLE PRECISION,
    timestamp BIGINT,
    raw_line  TEXT,
    reason    TEXT    NOT NULL,  -- a category: malformed_line, missing_value, not_a_number, ...
    detail    TEXT    NOT NULL   -- the sentence a person reads
);

-- One row per cleaned batch: the accounting that proves nothing was lost.
CREATE TABLE IF NOT EXISTS lake_batches (
    batch         INTEGER   NOT NULL,
    partition_key TEXT      NOT NULL,
    rows_raw      BIGINT    NOT NULL,
    rows_clean    BIGINT    NOT NULL,
    rows_rejected BIGINT    NOT NULL,
    cleaned_at    TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS lake_movies (
    movie_id BIGINT  NOT NULL,
    title    TEXT    NOT NULL,
    year     INTEGER,
    genres   TEXT    NOT NULL  -- pipe-joined genre names, '' for a movie with none
);

CREATE TABLE IF NOT EXISTS lake_movie_rejects (
    movie_id TEXT,
    title    TEXT,
    year     TEXT,
    genres   TEXT,
    reason   TEXT NOT NULL,
    detail   TEXT NOT NULL
);
