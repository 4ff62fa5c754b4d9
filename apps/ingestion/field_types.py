"""Field types in infer mode: once a source has stored a field as a measure (a number) it stays one, and once as a
label (text) it stays one, as InfluxDB keeps a field's type ("field type conflict").

Without this, a CSV column `temperature` that is numeric in most rows and "bad" in one became a label
`temperature=bad` on a new series of every other metric of that row: a reading turned into identity. So a record
that would use a name in the other role is refused to the dead letters with the field named (code
`type_conflict`); the sender fixes the value, or declares the field in the source's schema.

Checked where it is exact and cheap: when a batch would create series (a record that sends a known field with the
other type always needs a new series, because its key differs), against every series of the source in the
database, in record order within the batch (the first use of a name decides, as the first write decides in
InfluxDB). Line-protocol string fields are never stored (tags are the labels there), so one whose name is a known
measure of the source is refused by the validator from the names the writer knows (`known_measure_names`).
A name that a source already stores in both roles (data from before this rule) is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from apps.ingestion.validation import SeriesLocalKey, label_conflict_message, measure_conflict_message

TYPE_CONFLICT = "type_conflict"


def known_measure_names(*, source_id: int) -> set[str]:
    """The metric names the source stores (its measures)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT metric FROM storage_series WHERE source_id = %s", [source_id])
        return {row[0] for row in cursor.fetchall()}


def type_conflicts(
    *, source_id: int, new_keys: Iterable[SeriesLocalKey], first_use: dict[SeriesLocalKey, int]
) -> dict[SeriesLocalKey, tuple[str, str]]:
    """The series keys (of series about to be created) that use a name in the role the source does not store it
    in, with (field, message) for each; `first_use` orders keys by the batch position of their first record."""
    ordered = sorted(new_keys, key=lambda key: first_use.get(key, 0))
    names = sorted({key[0] for key in ordered} | {label for key in ordered for label, _ in key[1]})
    if not names:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT metric FROM storage_series WHERE source_id = %s AND metric = ANY(%s::text[])",
            [source_id, names],
        )
        measures = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT DISTINCT k FROM storage_series s CROSS JOIN LATERAL jsonb_object_keys(s.labels) AS k "
            "WHERE s.source_id = %s AND k = ANY(%s::text[])",
            [source_id, names],
        )
        labels = {row[0] for row in cursor.fetchall()}
    legacy = measures & labels  # stored both ways already: nothing to protect
    conflicts: dict[SeriesLocalKey, tuple[str, str]] = {}
    for key in ordered:
        metric, label_set = key
        if metric in labels and metric not in legacy:
            conflicts[key] = (metric, label_conflict_message(metric))
            continue
        clash = next(((name, value) for name, value in label_set if name in measures and name not in legacy), None)
        if clash is not None:
            conflicts[key] = (clash[0], measure_conflict_message(*clash))
            continue
        measures.add(metric)  # this batch's first use decides for its later records
        labels.update(name for name, _ in label_set)
    return conflicts
