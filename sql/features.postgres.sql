-- Lookups of the day's users and movies, and per-batch replacement, use these.
CREATE UNIQUE INDEX IF NOT EXISTS user_state_user ON user_state (user_id);
CREATE UNIQUE INDEX IF NOT EXISTS movie_state_movie ON movie_state (movie_id);
CREATE INDEX IF NOT EXISTS user_deltas_batch ON user_deltas (batch);
CREATE INDEX IF NOT EXISTS movie_deltas_batch ON movie_deltas (batch);
-- A day's examples, and the drift check's reference: the newest examples before a day, newest
-- first, a backward scan of this index where (batch) alone sorted the whole bootstrap (5M rows at
-- MovieLens-32M's size) on each of the first days.
DROP INDEX IF EXISTS training_examples_batch;
CREATE INDEX IF NOT EXISTS training_examples_batch_seq ON training_examples (batch, seq);
-- Every rating through a day in replay order (`rating_history`, read by the models and serving
-- each day): an index scan in seq order instead of sorting the history, 2.6 s where the sort took
-- 3.4 to 4.9 s at 5.5M ratings.
CREATE INDEX IF NOT EXISTS training_examples_seq ON training_examples (seq);
-- A user's ratings (the day's users' histories, the rated movies masked in their search, the
-- rated-movie check on each list): an index-only scan of these columns, where the planner read
-- the whole 2.3 GB of example rows at 5.5M ratings, and the reads grow with the day's users
-- instead of the history. 400 MB at 5.5M ratings.
CREATE INDEX IF NOT EXISTS training_examples_user ON training_examples (user_id, movie_id)
    INCLUDE (batch, seq, rating, global_mean, timestamp);
-- A version's lists written up to a set's batch (recommendation_rows), and a day's own lists
-- (replaced when the day is built again).
CREATE INDEX IF NOT EXISTS recommendation_lists_set_user ON recommendation_lists (model_version, as_of_batch, user_id);
