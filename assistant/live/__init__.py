"""Live news: the polite HTTP fetcher, feed and sitemap parsing, page to article, the configured
sources and their state, and the watcher's rounds that ingest what is new."""
