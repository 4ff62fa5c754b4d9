"""Score a CSV of `timestamp,value` with a streaming anomaly detector; writes `timestamp,value,anomaly_score`.

The same detector code the platform runs on live series, one point at a time in file order (each point scored from
the lines before it, even where a clock change repeats an hour). Needs no database. Timestamps: ISO 8601 (naive ones
are UTC) or seconds since 1970.
"""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.alerts.detectors import DEFAULT_DETECTOR, DETECTORS, series_score


class Command(BaseCommand):
    help = "Score FILE.csv (timestamp,value) with a streaming anomaly detector; CSV with anomaly_score to stdout."
    requires_system_checks: list[str] = []  # no database, no checks that might want one

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="CSV with a header naming the timestamp and value columns.")
        parser.add_argument(
            "--detector", default=DEFAULT_DETECTOR, choices=sorted(DETECTORS), help="Which detector scores the points."
        )

    def handle(self, *args, **options) -> None:
        path: Path = options["file"]
        try:
            handle = path.open(newline="", encoding="utf-8-sig")
        except OSError as error:
            raise CommandError(f"{path}: {error.strerror or error}") from None
        with handle:
            stamps, texts, times, values = _read(handle=handle, name=str(path))
        scores = series_score(times=times, values=values, detector=options["detector"])
        writer = csv.writer(sys.stdout if self.stdout._out is sys.stdout else self.stdout, lineterminator="\n")
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for stamp, text, score in zip(stamps, texts, scores, strict=True):
            writer.writerow([stamp, text, f"{score:.6f}"])


def _read(*, handle, name: str) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        raise CommandError(f"{name}: empty file; expected a header line with timestamp and value")
    columns = [column.strip().lower() for column in header]
    missing = [column for column in ("timestamp", "value") if column not in columns]
    if missing:
        raise CommandError(f"{name}: header has no {' or '.join(missing)} column (found: {', '.join(header)})")
    time_column = columns.index("timestamp")
    value_column = columns.index("value")
    stamps: list[str] = []
    texts: list[str] = []
    times: list[float] = []
    values: list[float] = []
    for line_number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) <= max(time_column, value_column):
            raise CommandError(f"{name}, line {line_number}: expected {len(header)} fields, got {len(row)}")
        stamp, text = row[time_column].strip(), row[value_column].strip()
        moment = _seconds(stamp)
        if moment is None:
            raise CommandError(f"{name}, line {line_number}: timestamp {stamp!r} is not ISO 8601 or epoch seconds")
        try:
            value = float(text) if text else float("nan")  # an empty value is a gap: scored 0, not learnt
        except ValueError:
            raise CommandError(f"{name}, line {line_number}: value {text!r} is not a number") from None
        stamps.append(stamp)
        texts.append(text)
        times.append(moment)
        values.append(value)
    return stamps, texts, np.array(times, dtype=np.float64), np.array(values, dtype=np.float64)


def _seconds(stamp: str) -> float | None:
    try:
        return float(stamp)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
