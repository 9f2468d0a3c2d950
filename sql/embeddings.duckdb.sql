-- Tower outputs of a model version as of a batch, in DuckDB's fixed-size FLOAT arrays.
-- 32 is ModelConfig.embedding_dim; the writer refuses vectors of another size.
CREATE TABLE IF NOT EXISTS user_embeddings (
    model_version TEXT      NOT NULL,
    as_of_batch   INTEGER   NOT NULL,
    user_id       BIGINT    NOT NULL,
    embedding     FLOAT[32] NOT NULL
);
CREATE TABLE IF NOT EXISTS movie_embeddings (
    model_version TEXT      NOT NULL,
    as_of_batch   INTEGER   NOT NULL,
    movie_id      BIGINT    NOT NULL,
    embedding     FLOAT[32] NOT NULL
);
