"""The recsys HTTP API (FastAPI): serves the champion's precomputed recommendations and predictions."""
