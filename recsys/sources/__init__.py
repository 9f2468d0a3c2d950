"""Where ratings come from: the public datasets' readers, the MovieLens downloader, a synthetic archive."""
