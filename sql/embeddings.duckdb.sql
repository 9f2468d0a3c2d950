-- Tower outputs of a model version as of a batch, in DuckDB's fixed-size FLOAT arrays.
-- {embedding_dim} is filled in with recsys.models.config.EMBEDDING_DIM when the file runs.
CREATE TABLE IF NOT EXISTS user_embeddings (
    model_version TEXT      NOT NULL,
    as_of_batch   INTEGER   NOT NULL,
    user_id       BIGINT    NOT NULL,
    embedding     FLOAT[{embedding_dim}] NOT NULL
);
CREATE TABLE IF NOT EXISTS movie_embeddings (
    model_version TEXT      NOT NULL,
    as_of_batch   INTEGER   NOT NULL,
    movie_id      BIGINT    NOT NULL,
    embedding     FLOAT[{embedding_dim}] NOT NULL
);
