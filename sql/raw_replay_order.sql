-- The raw archive's replay order: (timestamp, userId, movieId), the source line breaking ties, so
-- the order is total and a reload gives the same batches. A key that did not parse (NULL) sorts
-- after every value of it; such lines still belong to a batch, where the lake rejects them.
-- COPY keeps the ORDER BY's order in the file, whose row numbers then number the rows.
COPY (
    SELECT line_no, user_id, movie_id, rating, timestamp, raw_line
    FROM read_parquet('{typed}')
    ORDER BY timestamp NULLS LAST, user_id NULLS LAST, movie_id NULLS LAST, line_no
) TO '{ordered}' (FORMAT parquet)
