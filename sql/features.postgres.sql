-- Lookups of the day's users and movies, and per-batch replacement, use these.
CREATE UNIQUE INDEX IF NOT EXISTS user_state_user ON user_state (user_id);
CREATE UNIQUE INDEX IF NOT EXISTS movie_state_movie ON movie_state (movie_id);
CREATE INDEX IF NOT EXISTS user_deltas_batch ON user_deltas (batch);
CREATE INDEX IF NOT EXISTS movie_deltas_batch ON movie_deltas (batch);
CREATE INDEX IF NOT EXISTS training_examples_batch ON training_examples (batch);
-- A set's lists by user: carrying a day's unchanged lists probes it once per row copied (an index
-- without as_of_batch made that 4x slower at 4M rows: every set of the version matched).
DROP INDEX IF EXISTS batch_recommendations_user;
CREATE INDEX IF NOT EXISTS batch_recommendations_set_user ON batch_recommendations (model_version, as_of_batch, user_id);
