"""FEATURE layer: point-in-time transforms (`point_in_time`), the cumulative state store (`state`),
building features and examples per batch (`build`), and the GX suites on them (`suites`)."""
