"""The `recsys` command: `main.py` parses and dispatches; `replay.py` drives Dagster runs.

Only the commands that run Dagster jobs (load, replay, demo) import Dagster, when they run.
"""
