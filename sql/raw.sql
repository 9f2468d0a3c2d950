-- RAW store: the archive exactly as it was read, one row per source line, never deleted.
-- Values stay text here; the lake parses them and quarantines what does not parse.

CREATE TABLE IF NOT EXISTS raw_ratings (
    seq          BIGINT  NOT NULL,  -- position in replay order: (timestamp, userId, movieId, line)
    batch        INTEGER NOT NULL,  -- -1 = bootstrap slice; k >= 0 = daily partition start_date + k days
    line_no      BIGINT  NOT NULL,  -- line in the source file, to find a row again
    user_id      TEXT,
    movie_id     TEXT,
    rating       TEXT,
    timestamp    TEXT,
    raw_line     TEXT,              -- the whole line, only when it did not split into the expected fields
    processed_at TIMESTAMP          -- set when the lake has taken the row (seed 003: mark, never delete)
);

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
