-- The n movies whose embeddings are closest in cosine similarity to $movie_id's, for one version,
-- over real[] columns (no pgvector): a full scan, the arrays zipped by unnest.
SELECT m.movie_id, sum(a * b) / (sqrt(sum(a * a)) * sqrt(sum(b * b))) AS similarity
FROM movie_embeddings AS m,
     (SELECT embedding FROM movie_embeddings WHERE model_version = $version AND as_of_batch = $as_of AND movie_id = $movie_id) AS q,
     unnest(m.embedding, q.embedding) AS pair(a, b)
WHERE m.model_version = $version AND m.as_of_batch = $as_of AND m.movie_id <> $movie_id
GROUP BY m.movie_id
ORDER BY similarity DESC, m.movie_id
LIMIT $n
