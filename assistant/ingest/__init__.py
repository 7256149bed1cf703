"""Articles in: files and records read into articles, chunked with exact offsets, diffed against the
store and written (the Ingestor); backup and restore of the whole archive."""
