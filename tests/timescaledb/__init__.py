"""TimescaleDB backend tests, run against TimescaleDB on PGlite by `python -m tests.timescaledb`."""

# Set by the launcher (__main__.py) for the pytest session it starts against its PGlite server.
SESSION_FLAG = "TIMESCALEDB_PGLITE_SESSION"
