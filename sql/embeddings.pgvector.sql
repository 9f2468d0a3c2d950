-- Tower outputs of a model version as of a batch, as pgvector vectors with an HNSW index for
-- similarity search. {embedding_dim} is filled in with recsys.models.config.EMBEDDING_DIM when the file runs.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS user_embeddings (
    model_version TEXT       NOT NULL,
    as_of_batch   INTEGER    NOT NULL,
    user_id       BIGINT     NOT NULL,
    embedding     vector({embedding_dim}) NOT NULL
);
CREATE TABLE IF NOT EXISTS movie_embeddings (
    model_version TEXT       NOT NULL,
    as_of_batch   INTEGER    NOT NULL,
    movie_id      BIGINT     NOT NULL,
    embedding     vector({embedding_dim}) NOT NULL
);
CREATE INDEX IF NOT EXISTS user_embeddings_version ON user_embeddings (model_version, user_id);
CREATE INDEX IF NOT EXISTS movie_embeddings_version ON movie_embeddings (model_version, movie_id);
-- Cosine distance, the similarity of "movies like this one" (a tower output's length carries
-- how strongly a movie deviates from the mean, not what it is).
CREATE INDEX IF NOT EXISTS movie_embeddings_cosine ON movie_embeddings USING hnsw (embedding vector_cosine_ops);
