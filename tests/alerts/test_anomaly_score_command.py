"""`manage.py anomaly_score FILE.csv`: the CSV contract, with no database, and clear refusals."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from apps.alerts.detectors import series_score
from apps.alerts.detectors.calibration import sensitivity_level
from tests.conftest import REPO_ROOT


def _write(path: Path, rows: list[tuple[str, str]], header: str = "timestamp,value") -> Path:
    path.write_text(header + "\n" + "".join(f"{stamp},{value}\n" for stamp, value in rows))
    return path


def _series(length: int = 1_500) -> list[tuple[str, str]]:
    rng = np.random.default_rng(3)
    values = 20 + rng.normal(0, 1, length)
    values[1_200:] += 50
    return [(f"2014-04-{1 + i // 288:02d} {(i % 288) // 12:02d}:{(i % 12) * 5:02d}:00", f"{value:.4f}")
            for i, value in enumerate(values)]  # fmt: skip


def test_it_writes_timestamp_value_and_the_detectors_score_with_a_header_and_needs_no_database(tmp_path):
    path = _write(tmp_path / "in.csv", _series())
    nowhere = {"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "REDIS_URL": "redis://127.0.0.1:1/0"}
    environment = {"DJANGO_SETTINGS_MODULE": "analytics_platform.settings.dev", "PATH": "/usr/bin:/bin", **nowhere}
    completed = subprocess.run(
        [sys.executable, "manage.py", "anomaly_score", str(path), "--detector", "novelty"],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    rows = list(csv.reader(io.StringIO(completed.stdout)))
    assert rows[0] == ["timestamp", "value", "anomaly_score"]
    assert [row[:2] for row in rows[1:]] == [list(row) for row in _series()]
    scores = np.array([float(row[2]) for row in rows[1:]])
    assert scores.min() >= 0
    assert scores.max() <= 1
    level = sensitivity_level(0.5)
    assert int(np.argmax(scores >= level)) == 1_200  # the jump is the first detection
    times = np.array([np.datetime64(stamp.replace(" ", "T"), "s").astype(float) for stamp, _ in _series()])
    expected = series_score(times=times, values=np.array([float(value) for _, value in _series()]), detector="novelty")
    assert np.allclose(scores, expected, atol=1e-6)  # the same code the platform runs


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,reading\n2014-01-01 00:00:00,1\n", "no timestamp or value column"),
        ("timestamp,value\n2014-01-01 00:00:00,warm\n", "line 2: value 'warm' is not a number"),
        ("timestamp,value\nyesterday,1\n", "line 2: timestamp 'yesterday'"),
        ("", "empty file"),
    ],
)
def test_bad_files_are_refused_with_the_line_and_field(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(CommandError, match=message):
        call_command("anomaly_score", str(path), stdout=io.StringIO())


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(CommandError, match=r"missing\.csv"):
        call_command("anomaly_score", str(tmp_path / "missing.csv"), stdout=io.StringIO())
