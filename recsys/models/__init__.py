"""MODELS layer: the two-tower model (`config`, `inputs`, `network`, `training`, `artifacts`), the
baselines, ranking, the registry, model versions, a day of test-then-train (`daily`) and monitoring."""
