"""Data quality: suites and results (`results`), run with Great Expectations (`gx`)."""
