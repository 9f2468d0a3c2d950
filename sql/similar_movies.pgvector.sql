-- The n movies whose embeddings are closest in cosine similarity to $movie_id's, for one version
-- (<=> is pgvector's cosine distance, answered from the HNSW index).
SELECT m.movie_id, 1 - (m.embedding <=> q.embedding) AS similarity
FROM movie_embeddings AS m,
     (SELECT embedding FROM movie_embeddings WHERE model_version = $version AND as_of_batch = $as_of AND movie_id = $movie_id) AS q
WHERE m.model_version = $version AND m.as_of_batch = $as_of AND m.movie_id <> $movie_id
ORDER BY m.embedding <=> q.embedding, m.movie_id
LIMIT $n
