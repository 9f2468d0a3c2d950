-- The n movies whose embeddings are closest in cosine similarity to $movie_id's, for one version.
SELECT m.movie_id, array_cosine_similarity(m.embedding, q.embedding) AS similarity
FROM movie_embeddings AS m,
     (SELECT embedding FROM movie_embeddings WHERE model_version = $version AND as_of_batch = $as_of AND movie_id = $movie_id) AS q
WHERE m.model_version = $version AND m.as_of_batch = $as_of AND m.movie_id <> $movie_id
ORDER BY similarity DESC, m.movie_id
LIMIT $n
