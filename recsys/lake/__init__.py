"""LAKE layer: cleaning rules (`cleaning`), batches cleaned into the lake (`tables`), its GX suites (`suites`)."""
