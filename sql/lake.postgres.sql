CREATE INDEX IF NOT EXISTS lake_ratings_batch ON lake_ratings (batch);
CREATE INDEX IF NOT EXISTS lake_rejects_batch ON lake_rejects (batch);
