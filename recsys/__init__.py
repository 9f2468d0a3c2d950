"""recsys: the platform's logic as a library, by layer, with no Dagster in it.

    sources/   archive readers, the MovieLens downloader, the synthetic generator
    raw/       the archive typed, ordered and tagged with its batch, loaded into the raw store
    lake/      each batch cleaned into the lake, rejects with a reason, its GX suites
    features/  point-in-time features and training examples, the cumulative state, its GX suites
    models/    the Keras two-tower model, baselines, ranking, the registry, a day's test-then-train
    serving/   embeddings, precomputed recommendations, popularity, serving sets
    quality/   the Great Expectations runner and its result types
    stores.py  the store interface (DuckDB, PostgreSQL); settings.py and calendar.py the configuration
    cli/       the `recsys` command (its Dagster commands drive `recsys_assets`)

`recsys_assets` schedules this library as Dagster assets; `recsys_api` serves what it stores.
"""
