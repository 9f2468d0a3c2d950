-- raw_ratings' rows from the archive in replay order (sql/raw_replay_order.sql): seq is a row's
-- position in that order, batch {bootstrap_batch} the bootstrap slice of the first
-- {bootstrap_rows} rows, then batch k for the next {batch_size} rows each. Rows come out in seq
-- order (DuckDB keeps a scan's order), so they are stored sorted by batch.
SELECT
    file_row_number AS seq,
    CAST(CASE WHEN file_row_number < {bootstrap_rows} THEN {bootstrap_batch}
              ELSE (file_row_number - {bootstrap_rows}) // {batch_size} END AS INTEGER) AS batch,
    line_no, user_id, movie_id, rating, timestamp, raw_line
FROM read_parquet('{ordered}', file_row_number = true)
