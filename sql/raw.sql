-- RAW store: the archive as it was read, one row per source line, never deleted.
-- Numbers are stored as numbers; a line that is not four numbers keeps its text in raw_line
-- (its unparseable fields are NULL) and the lake quarantines it with the reason.

CREATE TABLE IF NOT EXISTS raw_ratings (
    seq          BIGINT  NOT NULL,  -- position in replay order: (timestamp, userId, movieId, line)
    batch        INTEGER NOT NULL,  -- -1 = bootstrap slice; k >= 0 = daily partition start_date + k days
    line_no      BIGINT  NOT NULL,  -- line in the source file, to find a row again
    user_id      BIGINT,
    movie_id     BIGINT,
    rating       DOUBLE PRECISION,
    timestamp    BIGINT,            -- Unix epoch seconds
    raw_line     TEXT               -- the line's text, only when it is not four numbers
);

-- Rows are marked processed through their batch when the lake takes it (seed 003: mark, never
-- delete). A per-row UPDATE would write a second version of every row over a replay (32M row
-- versions, twice the table) and cost 0.5 s a batch on PostgreSQL.
CREATE TABLE IF NOT EXISTS raw_processed (
    batch        INTEGER   NOT NULL,
    processed_at TIMESTAMP NOT NULL
);

CREATE OR REPLACE VIEW raw_ratings_status AS
SELECT r.*, p.processed_at
FROM raw_ratings r LEFT JOIN raw_processed p ON p.batch = r.batch;

CREATE TABLE IF NOT EXISTS raw_movies (
    movie_id TEXT,
    title    TEXT,
    year     TEXT,
    genres   TEXT
);

-- One row describing the loaded archive: where it came from and how it was cut into batches.
CREATE TABLE IF NOT EXISTS raw_archive (
    source         TEXT      NOT NULL,
    layout         TEXT      NOT NULL,
    rows           BIGINT    NOT NULL,
    movies         BIGINT    NOT NULL,
    bootstrap_rows BIGINT    NOT NULL,
    batch_size     INTEGER   NOT NULL,
    batches        INTEGER   NOT NULL,
    max_timestamp  BIGINT    NOT NULL,  -- the load time: a rating after it is impossible
    loaded_at      TIMESTAMP NOT NULL
);
