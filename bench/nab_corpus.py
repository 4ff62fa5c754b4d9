"""The labelled NAB files in ../shared/data/nab/ (or NAB_DATA_DIR): values, timestamps and windows as indexes."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from bench.nab_scoring import LabelledFile

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "nab"


@dataclass(frozen=True)
class CorpusFile:
    """One data file: its name (category/file.csv), timestamps (seconds since 1970), values and labels."""

    name: str
    times: np.ndarray
    values: np.ndarray
    labelled: LabelledFile

    @property
    def category(self) -> str:
        """The folder the file sits in (e.g. realKnownCause)."""
        return self.name.split("/", 1)[0]


def data_dir() -> Path:
    """Where the corpus is: NAB_DATA_DIR, or shared/data/nab beside the repository."""
    return Path(os.environ.get("NAB_DATA_DIR", DEFAULT_DATA_DIR))


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.strip()).replace(tzinfo=None).timestamp() - _EPOCH_OFFSET


_EPOCH_OFFSET = datetime(1970, 1, 1).timestamp()  # timestamps are naive: read them as UTC whatever TZ says


def load_corpus(*, root: Path | None = None, limit: int | None = None) -> list[CorpusFile]:
    """Every labelled file (sorted by name), or the first `limit` of them."""
    root = root or data_dir()
    windows_by_file = json.loads((root / "combined_windows.json").read_text())
    names = sorted(windows_by_file)
    if limit is not None:
        names = names[:limit]
    return [_load_file(root=root, name=name, windows=windows_by_file[name]) for name in names]


def _load_file(*, root: Path, name: str, windows: list[list[str]]) -> CorpusFile:
    with (root / "data" / name).open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        rows = [(row[0], float(row[1])) for row in reader if row]
    times = np.array([_parse_time(stamp) for stamp, _ in rows])
    values = np.array([value for _, value in rows])
    indexes = []
    for start, end in windows:  # a scan, not a binary search: a few files repeat an hour (clock changes)
        first = int(np.argmax(times >= _parse_time(start)))
        last = int(len(times) - 1 - np.argmax(times[::-1] <= _parse_time(end)))
        indexes.append((first, last))
    labelled = LabelledFile(name=name, length=len(rows), windows=tuple(indexes))
    return CorpusFile(name=name, times=times, values=values, labelled=labelled)
