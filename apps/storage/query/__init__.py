"""The query engine: one entry point, `query_execute`, for every read of points."""
