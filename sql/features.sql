-- FEATURE store: point-in-time features and the training examples built from them.
-- Genre columns follow recsys_assets/genres.py (GENRE_SLUGS), in that order.

-- Cumulative state as of feature_state.as_of_batch: one row per user who has rated anything.
-- A user's mean in a genre is ug_sum_<genre> / ug_count_<genre> (0 where the count is 0).
CREATE TABLE IF NOT EXISTS user_state (
    user_id BIGINT NOT NULL,
    u_sum DOUBLE PRECISION NOT NULL,
    u_count BIGINT NOT NULL,
    ug_sum_action DOUBLE PRECISION NOT NULL,
    ug_count_action BIGINT NOT NULL,
    ug_sum_adventure DOUBLE PRECISION NOT NULL,
    ug_count_adventure BIGINT NOT NULL,
    ug_sum_animation DOUBLE PRECISION NOT NULL,
    ug_count_animation BIGINT NOT NULL,
    ug_sum_children DOUBLE PRECISION NOT NULL,
    ug_count_children BIGINT NOT NULL,
    ug_sum_comedy DOUBLE PRECISION NOT NULL,
    ug_count_comedy BIGINT NOT NULL,
    ug_sum_crime DOUBLE PRECISION NOT NULL,
    ug_count_crime BIGINT NOT NULL,
    ug_sum_documentary DOUBLE PRECISION NOT NULL,
    ug_count_documentary BIGINT NOT NULL,
    ug_sum_drama DOUBLE PRECISION NOT NULL,
    ug_count_drama BIGINT NOT NULL,
    ug_sum_fantasy DOUBLE PRECISION NOT NULL,
    ug_count_fantasy BIGINT NOT NULL,
    ug_sum_film_noir DOUBLE PRECISION NOT NULL,
    ug_count_film_noir BIGINT NOT NULL,
    ug_sum_horror DOUBLE PRECISION NOT NULL,
    ug_count_horror BIGINT NOT NULL,
    ug_sum_imax DOUBLE PRECISION NOT NULL,
    ug_count_imax BIGINT NOT NULL,
    ug_sum_musical DOUBLE PRECISION NOT NULL,
    ug_count_musical BIGINT NOT NULL,
    ug_sum_mystery DOUBLE PRECISION NOT NULL,
    ug_count_mystery BIGINT NOT NULL,
    ug_sum_romance DOUBLE PRECISION NOT NULL,
    ug_count_romance BIGINT NOT NULL,
    ug_sum_sci_fi DOUBLE PRECISION NOT NULL,
    ug_count_sci_fi BIGINT NOT NULL,
    ug_sum_thriller DOUBLE PRECISION NOT NULL,
    ug_count_thriller BIGINT NOT NULL,
    ug_sum_war DOUBLE PRECISION NOT NULL,
    ug_count_war BIGINT NOT NULL,
    ug_sum_western DOUBLE PRECISION NOT NULL,
    ug_count_western BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS movie_state (
    movie_id BIGINT           NOT NULL,
    m_sum    DOUBLE PRECISION NOT NULL,
    m_count  BIGINT           NOT NULL
);

-- Where the state stands: the last batch folded in (-1 = the bootstrap slice) and global totals.
CREATE TABLE IF NOT EXISTS feature_state (
    as_of_batch  INTEGER          NOT NULL,
    rating_sum   DOUBLE PRECISION NOT NULL,
    rating_count BIGINT           NOT NULL,
    updated_at   TIMESTAMP        NOT NULL
);

-- Each batch's own contribution to the state, kept so a batch can be taken back out exactly
-- when it is rebuilt (the state is rewound to before it, never recomputed from all history).
CREATE TABLE IF NOT EXISTS user_deltas (
    batch INTEGER NOT NULL,
    user_id BIGINT NOT NULL,
    u_sum DOUBLE PRECISION NOT NULL,
    u_count BIGINT NOT NULL,
    ug_sum_action DOUBLE PRECISION NOT NULL,
    ug_count_action BIGINT NOT NULL,
    ug_sum_adventure DOUBLE PRECISION NOT NULL,
    ug_count_adventure BIGINT NOT NULL,
    ug_sum_animation DOUBLE PRECISION NOT NULL,
    ug_count_animation BIGINT NOT NULL,
    ug_sum_children DOUBLE PRECISION NOT NULL,
    ug_count_children BIGINT NOT NULL,
    ug_sum_comedy DOUBLE PRECISION NOT NULL,
    ug_count_comedy BIGINT NOT NULL,
    ug_sum_crime DOUBLE PRECISION NOT NULL,
    ug_count_crime BIGINT NOT NULL,
    ug_sum_documentary DOUBLE PRECISION NOT NULL,
    ug_count_documentary BIGINT NOT NULL,
    ug_sum_drama DOUBLE PRECISION NOT NULL,
    ug_count_drama BIGINT NOT NULL,
    ug_sum_fantasy DOUBLE PRECISION NOT NULL,
    ug_count_fantasy BIGINT NOT NULL,
    ug_sum_film_noir DOUBLE PRECISION NOT NULL,
    ug_count_film_noir BIGINT NOT NULL,
    ug_sum_horror DOUBLE PRECISION NOT NULL,
    ug_count_horror BIGINT NOT NULL,
    ug_sum_imax DOUBLE PRECISION NOT NULL,
    ug_count_imax BIGINT NOT NULL,
    ug_sum_musical DOUBLE PRECISION NOT NULL,
    ug_count_musical BIGINT NOT NULL,
    ug_sum_mystery DOUBLE PRECISION NOT NULL,
    ug_count_mystery BIGINT NOT NULL,
    ug_sum_romance DOUBLE PRECISION NOT NULL,
    ug_count_romance BIGINT NOT NULL,
    ug_sum_sci_fi DOUBLE PRECISION NOT NULL,
    ug_count_sci_fi BIGINT NOT NULL,
    ug_sum_thriller DOUBLE PRECISION NOT NULL,
    ug_count_thriller BIGINT NOT NULL,
    ug_sum_war DOUBLE PRECISION NOT NULL,
    ug_count_war BIGINT NOT NULL,
    ug_sum_western DOUBLE PRECISION NOT NULL,
    ug_count_western BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS movie_deltas (
    batch    INTEGER          NOT NULL,
    movie_id BIGINT           NOT NULL,
    m_sum    DOUBLE PRECISION NOT NULL,
    m_count  BIGINT           NOT NULL
);

-- Static movie features: one-hot genres, a no-genre flag, release year standardized with the
-- parameters in feature_params (fitted on the bootstrap slice).
CREATE TABLE IF NOT EXISTS movie_features (
    movie_id BIGINT NOT NULL,
    mg_action SMALLINT NOT NULL,
    mg_adventure SMALLINT NOT NULL,
    mg_animation SMALLINT NOT NULL,
    mg_children SMALLINT NOT NULL,
    mg_comedy SMALLINT NOT NULL,
    mg_crime SMALLINT NOT NULL,
    mg_documentary SMALLINT NOT NULL,
    mg_drama SMALLINT NOT NULL,
    mg_fantasy SMALLINT NOT NULL,
    mg_film_noir SMALLINT NOT NULL,
    mg_horror SMALLINT NOT NULL,
    mg_imax SMALLINT NOT NULL,
    mg_musical SMALLINT NOT NULL,
    mg_mystery SMALLINT NOT NULL,
    mg_romance SMALLINT NOT NULL,
    mg_sci_fi SMALLINT NOT NULL,
    mg_thriller SMALLINT NOT NULL,
    mg_war SMALLINT NOT NULL,
    mg_western SMALLINT NOT NULL,
    m_no_genre SMALLINT NOT NULL,
    m_year_z DOUBLE PRECISION NOT NULL,
    m_year_known SMALLINT NOT NULL
);

CREATE TABLE IF NOT EXISTS feature_params (
    name  TEXT             NOT NULL,
    value DOUBLE PRECISION NOT NULL
);

-- One row per clean rating: the rating and its features as they stood before its batch.
CREATE TABLE IF NOT EXISTS training_examples (
    batch INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    movie_id BIGINT NOT NULL,
    rating DOUBLE PRECISION NOT NULL,
    timestamp BIGINT NOT NULL,
    global_mean DOUBLE PRECISION NOT NULL,
    u_count BIGINT NOT NULL,
    u_mean DOUBLE PRECISION NOT NULL,
    ug_count_action BIGINT NOT NULL,
    ug_count_adventure BIGINT NOT NULL,
    ug_count_animation BIGINT NOT NULL,
    ug_count_children BIGINT NOT NULL,
    ug_count_comedy BIGINT NOT NULL,
    ug_count_crime BIGINT NOT NULL,
    ug_count_documentary BIGINT NOT NULL,
    ug_count_drama BIGINT NOT NULL,
    ug_count_fantasy BIGINT NOT NULL,
    ug_count_film_noir BIGINT NOT NULL,
    ug_count_horror BIGINT NOT NULL,
    ug_count_imax BIGINT NOT NULL,
    ug_count_musical BIGINT NOT NULL,
    ug_count_mystery BIGINT NOT NULL,
    ug_count_romance BIGINT NOT NULL,
    ug_count_sci_fi BIGINT NOT NULL,
    ug_count_thriller BIGINT NOT NULL,
    ug_count_war BIGINT NOT NULL,
    ug_count_western BIGINT NOT NULL,
    ug_mean_action DOUBLE PRECISION NOT NULL,
    ug_mean_adventure DOUBLE PRECISION NOT NULL,
    ug_mean_animation DOUBLE PRECISION NOT NULL,
    ug_mean_children DOUBLE PRECISION NOT NULL,
    ug_mean_comedy DOUBLE PRECISION NOT NULL,
    ug_mean_crime DOUBLE PRECISION NOT NULL,
    ug_mean_documentary DOUBLE PRECISION NOT NULL,
    ug_mean_drama DOUBLE PRECISION NOT NULL,
    ug_mean_fantasy DOUBLE PRECISION NOT NULL,
    ug_mean_film_noir DOUBLE PRECISION NOT NULL,
    ug_mean_horror DOUBLE PRECISION NOT NULL,
    ug_mean_imax DOUBLE PRECISION NOT NULL,
    ug_mean_musical DOUBLE PRECISION NOT NULL,
    ug_mean_mystery DOUBLE PRECISION NOT NULL,
    ug_mean_romance DOUBLE PRECISION NOT NULL,
    ug_mean_sci_fi DOUBLE PRECISION NOT NULL,
    ug_mean_thriller DOUBLE PRECISION NOT NULL,
    ug_mean_war DOUBLE PRECISION NOT NULL,
    ug_mean_western DOUBLE PRECISION NOT NULL,
    m_count BIGINT NOT NULL,
    m_mean DOUBLE PRECISION NOT NULL,
    mg_action SMALLINT NOT NULL,
    mg_adventure SMALLINT NOT NULL,
    mg_animation SMALLINT NOT NULL,
    mg_children SMALLINT NOT NULL,
    mg_comedy SMALLINT NOT NULL,
    mg_crime SMALLINT NOT NULL,
    mg_documentary SMALLINT NOT NULL,
    mg_drama SMALLINT NOT NULL,
    mg_fantasy SMALLINT NOT NULL,
    mg_film_noir SMALLINT NOT NULL,
    mg_horror SMALLINT NOT NULL,
    mg_imax SMALLINT NOT NULL,
    mg_musical SMALLINT NOT NULL,
    mg_mystery SMALLINT NOT NULL,
    mg_romance SMALLINT NOT NULL,
    mg_sci_fi SMALLINT NOT NULL,
    mg_thriller SMALLINT NOT NULL,
    mg_war SMALLINT NOT NULL,
    mg_western SMALLINT NOT NULL,
    m_no_genre SMALLINT NOT NULL,
    m_year_z DOUBLE PRECISION NOT NULL,
    m_year_known SMALLINT NOT NULL
);

-- MODEL REGISTRY: every trained model is a version; exactly one is the champion (in service).
CREATE TABLE IF NOT EXISTS model_versions (
    version         TEXT      NOT NULL,  -- e.g. full-20250105-1a2b3c4d
    kind            TEXT      NOT NULL,  -- full (trained from scratch) | warm (fine-tuned from parent)
    parent          TEXT,                -- the version a warm start continued from
    trained_on      TEXT      NOT NULL,  -- the data partitions: bootstrap, a day, or first..last
    first_batch     INTEGER   NOT NULL,  -- -1 = bootstrap slice
    last_batch      INTEGER   NOT NULL,
    rows            BIGINT    NOT NULL,
    hyperparameters TEXT      NOT NULL,  -- JSON of ModelConfig and the learning rate used
    metrics         TEXT      NOT NULL,  -- JSON: training loss, time, throughput
    artifact        TEXT      NOT NULL,  -- path of the .keras file (optimizer state included)
    checksum        TEXT      NOT NULL,  -- sha256 of the artifact, checked on every load
    created_at      TIMESTAMP NOT NULL,
    status          TEXT      NOT NULL,  -- candidate | champion | rejected | retired (a former champion)
    stage           TEXT      NOT NULL   -- rating (predicts the rating) | retrieval (which movies a user picks)
);

-- Test-then-train monitoring: each model scored on a day's batch before anything trains on it.
CREATE TABLE IF NOT EXISTS model_metrics (
    partition_key TEXT             NOT NULL,
    batch         INTEGER          NOT NULL,
    model         TEXT             NOT NULL,  -- global_mean | bias | champion | warm | full
    version       TEXT,                       -- the registry version (NULL for baselines)
    segment       TEXT             NOT NULL,  -- all | with_history | no_history (the user's past ratings)
    rows          BIGINT           NOT NULL,
    mse           DOUBLE PRECISION NOT NULL,
    rmse          DOUBLE PRECISION NOT NULL,
    mae           DOUBLE PRECISION NOT NULL,
    mean_error    DOUBLE PRECISION NOT NULL   -- prediction minus rating, averaged (the residuals' bias)
);

-- Data drift of each day against its trailing reference window (recsys.features.drift), and the
-- champion's residual drift (recsys.models.monitoring): one row per statistic, read by the checks
-- and the retrain trigger.
CREATE TABLE IF NOT EXISTS drift_metrics (
    partition_key TEXT             NOT NULL,
    batch         INTEGER          NOT NULL,
    check_name    TEXT             NOT NULL,  -- rating_distribution_drift | genre_drift | new_arrivals_drift | residual_drift
    statistic     TEXT             NOT NULL,  -- psi | wasserstein | genre_mix_psi | ...
    value         DOUBLE PRECISION NOT NULL,
    threshold     DOUBLE PRECISION NOT NULL,
    alarm         BOOLEAN          NOT NULL,  -- value > threshold
    reference     TEXT             NOT NULL,  -- the window compared with, e.g. 2025-01-01..2025-01-07
    contributors  TEXT             NOT NULL   -- JSON [[name, change], ...], what moved most first
);

-- Full retrains requested outside the weekly calendar (recsys.models.triggers): which version, why.
CREATE TABLE IF NOT EXISTS retrain_triggers (
    partition_key TEXT      NOT NULL,  -- the day whose alarms triggered it (it trains through that day)
    batch         INTEGER   NOT NULL,
    version       TEXT      NOT NULL,
    reason        TEXT      NOT NULL,
    alarms        TEXT      NOT NULL,  -- JSON {batch: ["check.statistic", ...]} of the days considered
    decided_at    TIMESTAMP NOT NULL
);

-- Promotion gate decisions: a candidate replaces its stage's champion only if it beats it on the
-- latest unseen day by the configured margin (rating: lower MSE; retrieval: higher NDCG@10).
CREATE TABLE IF NOT EXISTS promotions (
    partition_key   TEXT             NOT NULL,
    batch           INTEGER          NOT NULL,
    candidate       TEXT             NOT NULL,
    champion        TEXT             NOT NULL,
    metric          TEXT             NOT NULL,  -- mse | ndcg_at_10
    candidate_score DOUBLE PRECISION NOT NULL,
    champion_score  DOUBLE PRECISION NOT NULL,
    margin        DOUBLE PRECISION NOT NULL,
    promoted      BOOLEAN          NOT NULL,
    decided_at    TIMESTAMP        NOT NULL
);

-- SERVING: what the API answers from, rebuilt after each day's promotion decision.
-- A serving set is one champion version's embeddings and recommendations as of a batch; the API
-- answers from the newest complete set (it is written last, after its rows).
CREATE TABLE IF NOT EXISTS serving_sets (
    model_version            TEXT             NOT NULL,
    as_of_batch              INTEGER          NOT NULL,  -- the user and movie state the set was computed on
    partition_key            TEXT             NOT NULL,
    embedding_backend        TEXT             NOT NULL,  -- pgvector | array
    embedding_dim            INTEGER          NOT NULL,
    global_mean              DOUBLE PRECISION NOT NULL,  -- prediction = global_mean + user . movie
    users                    BIGINT           NOT NULL,
    movies                   BIGINT           NOT NULL,
    recommendations_per_user INTEGER          NOT NULL,
    created_at               TIMESTAMP        NOT NULL,
    retrieval_version        TEXT             NOT NULL   -- the retrieval champion that picked the candidates
);

-- Each known user's top-N movies not yet rated, in two stages: the retrieval champion's candidates
-- ordered with the rating champion. One row per user, written as of the batch it was ranked on, the
-- list in arrays. A day without a new champion ranks only the users who rated and writes their
-- rows alone: a serving set's list of a user is the newest row of the set's version written as of
-- the set's batch or before (the view below), so the lists of the users who did not rate are
-- neither copied nor rewritten (copying 200k lists a day took 1.1 s on PostgreSQL).
CREATE TABLE IF NOT EXISTS recommendation_lists (
    model_version TEXT     NOT NULL,
    as_of_batch   INTEGER  NOT NULL,  -- the batch the user was ranked on
    user_id       BIGINT   NOT NULL,
    movie_ids     BIGINT[] NOT NULL,  -- best first
    scores        REAL[]   NOT NULL   -- their predicted ratings, clipped to 0.5..5
);

-- Each serving set's lists, one row per user: the newest list of the set's version written as of
-- the set's batch. Both engines push a filter on the set's keys (or a user) below the window.
CREATE OR REPLACE VIEW serving_lists AS
SELECT model_version, as_of_batch, user_id, movie_ids, scores
FROM (
    SELECT s.model_version, s.as_of_batch, l.user_id, l.movie_ids, l.scores,
           row_number() OVER (PARTITION BY s.model_version, s.as_of_batch, l.user_id ORDER BY l.as_of_batch DESC) AS newest
    FROM serving_sets AS s
    JOIN recommendation_lists AS l ON l.model_version = s.model_version AND l.as_of_batch <= s.as_of_batch
) AS lists
WHERE newest = 1;

-- The same lists as rows (rank 1 = best): what the API, the checks and people read, keyed by the
-- set (its model_version and as_of_batch). Both engines zip set-returning functions of one row's
-- arrays.
CREATE OR REPLACE VIEW recommendation_rows AS
SELECT model_version, as_of_batch, user_id,
       CAST(generate_subscripts(movie_ids, 1) AS SMALLINT) AS rank,
       unnest(movie_ids) AS movie_id,
       unnest(scores) AS score
FROM serving_lists;

-- Stage one's candidates of each user: the retrieval champion's best unrated movies. They change
-- only with that champion or the user's ratings, so a new rating champion orders the stored
-- candidates again instead of searching the catalog for every user. One row per (retrieval
-- version, user), as of the batch it was searched for; kept while a serving set uses the version.
CREATE TABLE IF NOT EXISTS retrieval_candidates (
    retrieval_version TEXT     NOT NULL,
    as_of_batch       INTEGER  NOT NULL,
    user_id           BIGINT   NOT NULL,
    movie_ids         BIGINT[] NOT NULL,  -- best retrieval score first
    scores            REAL[]   NOT NULL   -- their retrieval scores
);

-- One list for the users a serving set has no list for (no ratings yet): the two stages for the
-- towers' cold user (recsys.models.retrieval.cold_user_vector), per serving set.
CREATE TABLE IF NOT EXISTS cold_start_recommendations (
    model_version TEXT     NOT NULL,
    as_of_batch   INTEGER  NOT NULL,
    rank          SMALLINT NOT NULL,  -- 1 = best
    movie_id      BIGINT   NOT NULL,
    score         REAL     NOT NULL   -- the predicted rating of a user with no ratings, clipped to 0.5..5
);

-- Movies with enough recent ratings, most rated first: the fallback before a serving set exists,
-- and what the cold-start list is measured against.
CREATE TABLE IF NOT EXISTS popular_movies (
    as_of_batch INTEGER          NOT NULL,
    rank        INTEGER          NOT NULL,
    movie_id    BIGINT           NOT NULL,
    mean_rating DOUBLE PRECISION NOT NULL,
    ratings     BIGINT           NOT NULL  -- ratings in the recency window
);

-- Test-then-train ranking quality: the champion in service and the popularity ranking, each
-- ranking for the users of a day before anything trains on that day (relevant = rating >= 4).
CREATE TABLE IF NOT EXISTS ranking_metrics (
    partition_key TEXT             NOT NULL,
    batch         INTEGER          NOT NULL,
    model         TEXT             NOT NULL,  -- champion | popularity
    version       TEXT,                       -- the champion's registry version (NULL for popularity)
    protocol      TEXT             NOT NULL,  -- catalog: top-k of every unrated movie | rated: the day's rated movies reordered
    segment       TEXT             NOT NULL,  -- all | with_history | no_history
    users         BIGINT           NOT NULL,
    ndcg_at_10    DOUBLE PRECISION NOT NULL,
    recall_at_10  DOUBLE PRECISION NOT NULL
);
