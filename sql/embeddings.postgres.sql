-- Tower outputs of a model version as of a batch, as PostgreSQL real[] (no pgvector on the server).
CREATE TABLE IF NOT EXISTS user_embeddings (
    model_version TEXT    NOT NULL,
    as_of_batch   INTEGER NOT NULL,
    user_id       BIGINT  NOT NULL,
    embedding     REAL[]  NOT NULL
);
CREATE TABLE IF NOT EXISTS movie_embeddings (
    model_version TEXT    NOT NULL,
    as_of_batch   INTEGER NOT NULL,
    movie_id      BIGINT  NOT NULL,
    embedding     REAL[]  NOT NULL
);
CREATE INDEX IF NOT EXISTS user_embeddings_version ON user_embeddings (model_version, user_id);
CREATE INDEX IF NOT EXISTS movie_embeddings_version ON movie_embeddings (model_version, movie_id);
