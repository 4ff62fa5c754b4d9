"""The last body's series-id lookups, taken again when the next body of the same source needs the same ones.

An agent's batches mostly list its series in the same order, so the columnar paths (JSON and line protocol) find
the same distinct label combinations or series keys, in the same order, batch after batch. Looking each up again
costs a Python dictionary lookup per distinct value and an Arrow array built from them; comparing the distinct
values with the last body's is one Arrow call. Lookups are remembered per validator (replaced with the schema)
and only for the ids they were looked up in: a stored series keeps its id, and a validator judges a label
combination the same way every time, so equal inputs give equal lookups.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import pyarrow as pa

from apps.ingestion.validation import RecordValidator

Lookups = TypeVar("Lookups")


class LastLookups(Generic[Lookups]):
    """Per validator, the last (shape, ids looked in, distinct values, lookups) a columnar path built."""

    def __init__(self) -> None:
        self._last: weakref.WeakKeyDictionary[RecordValidator, tuple[Hashable, object, pa.Array, Lookups]] = (
            weakref.WeakKeyDictionary()
        )

    def reuse_or_build(
        self,
        validator: RecordValidator,
        *,
        shape: Hashable,
        ids: object,
        distinct: pa.Array,
        build: Callable[[], Lookups | None],
    ) -> Lookups | None:
        """The last lookups if `shape`, `ids` (the same object) and `distinct` (equal values, in the same order)
        are the last ones; else `build()`, remembered unless it is None (a value refused or a series unknown)."""
        last = self._last.get(validator)
        if last is not None and last[0] == shape and last[1] is ids and last[2].equals(distinct):
            return last[3]
        lookups = build()
        if lookups is not None:
            self._last[validator] = (shape, ids, distinct, lookups)
        return lookups

    def last(self, validator: RecordValidator) -> Lookups | None:
        """The lookups remembered for `validator` (tests)."""
        entry = self._last.get(validator)
        return None if entry is None else entry[3]
