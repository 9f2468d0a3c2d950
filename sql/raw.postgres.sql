-- Rows arrive sorted by batch, so a BRIN index finds a batch for almost no space or load time.
CREATE INDEX IF NOT EXISTS raw_ratings_batch ON raw_ratings USING brin (batch);
