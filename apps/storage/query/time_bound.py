"""Reads outside the query engine that may run a client's regular expression get the engine's time bound too.

The engine sets `statement_timeout` on its own transaction. A live subscription resolves its series with a
label regex in a plain ORM query; PostgreSQL's regex engine takes seconds on a pattern with back-references
(`(.*)(.*)(.*)\\1\\2\\3b` against a 200-character label), so without the bound one subscription could hold a
connection and a CPU for as long as it liked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import OperationalError, connections, transaction

from apps.storage.query import engine
from apps.storage.query.engine import QueryTimeout

QUERY_CANCELED = "57014"


@contextmanager
def statement_time_bounded(*, alias: str = "default", timeout_ms: int | None = None) -> Iterator[None]:
    """Run the block's statements in a transaction with the engine's statement timeout; a timeout raises
    QueryTimeout (the same error, and message, as a query the engine gave up on)."""
    bound = int(timeout_ms if timeout_ms is not None else engine.STATEMENT_TIMEOUT_MS)
    try:
        with transaction.atomic(using=alias):
            with connections[alias].cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {bound}")
            yield
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == QUERY_CANCELED or "statement timeout" in str(error):
            raise QueryTimeout(
                "The query took too long; use a shorter range, a coarser bucket, fewer series or a simpler "
                "regular expression."
            ) from None
        raise
