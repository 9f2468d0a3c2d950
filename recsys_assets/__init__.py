"""The Dagster layer: thin assets, checks, partitions, jobs and schedules over the `recsys` library.

One module per layer (raw, lake, features, models, serving), each a `definitions(calendar)`
function that returns that layer's small `Definitions`; `definitions.py` merges them with the jobs,
schedules and resources into the one code location Dagster loads. Asset bodies open the stores,
call the library and report what happened (metadata, check results); the work is in `recsys`.
"""
