"""RAW layer: the archive typed and put in replay order (`archive`), and loaded into the raw store (`load`)."""
