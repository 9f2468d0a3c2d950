-- when: SELECT count(*) FROM information_schema.tables WHERE table_name = 'batch_recommendations' AND table_type = 'BASE TABLE'
-- Stores written before recommendation_lists kept a row per listed movie in batch_recommendations
-- (model_version, as_of_batch, user_id, rank, movie_id, score): their lists, every kept set's, move
-- into one row per user, and the old table goes.
INSERT INTO recommendation_lists (model_version, as_of_batch, user_id, movie_ids, scores)
SELECT model_version, as_of_batch, user_id, array_agg(movie_id ORDER BY rank), array_agg(score ORDER BY rank)
FROM batch_recommendations
GROUP BY model_version, as_of_batch, user_id;
DROP TABLE batch_recommendations;
