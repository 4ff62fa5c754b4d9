"""Anomaly detectors on the labelled NAB files, scored the way NAB scores, and their speed on one core.

For each detector (apps/alerts/detectors): every file of ../shared/data/nab/ (NAB_DATA_DIR) is scored as a stream
(all files at once, one detector bank row per file, one step per time index: the code the platform runs); then
NAB's scoring (bench/nab_scoring.py) gives the standard, reward_low_FP and reward_low_FN scores, each at the
threshold that is best over all files for that profile, per category too, and leave-one-category-out scores (the
threshold chosen on the two other categories: how much the one threshold is fitted to the files it is judged on).
On realKnownCause/machine_temperature_system_failure.csv it reports, at the default sensitivity, when the first
detection fires in each labelled window relative to the labelled failure, and the false detections elsewhere.

Speed: 10,000 series at 1 Hz, one bank step per second of data, in this process pinned to one core; points per
second after the warm-up, the warm-up's own cost, memory per series (arrays) and the packed state's size.

    .venv/bin/python -m bench anomaly [--quick]      # --smoke: 2 files, 100 series
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from datetime import UTC, datetime

import numpy as np

from bench import smoke
from bench.nab_corpus import CorpusFile, data_dir, load_corpus
from bench.nab_scoring import PROFILES, best_threshold, corpus_score, null_and_perfect, subset_score

MACHINE_FILE = "realKnownCause/machine_temperature_system_failure.csv"
SPEED_SERIES = 10_000
SPEED_STEPS = 60  # measured seconds of data, after the warm-up
SMOKE_SERIES = 100


def _log(message: str) -> None:
    print(f"[anomaly {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def corpus_scores(*, detector: str, corpus: list[CorpusFile]) -> tuple[list[np.ndarray], float]:
    """Each file's scores, all files streamed through one bank; and the points per second it took."""
    from apps.alerts.detectors import detector_create

    bank = detector_create(detector, capacity=len(corpus))
    longest = max(len(item.values) for item in corpus)
    lengths = np.array([len(item.values) for item in corpus])
    times = np.full((len(corpus), longest), np.nan)
    values = np.full((len(corpus), longest), np.nan)
    for row, item in enumerate(corpus):
        times[row, : len(item.values)] = item.times
        values[row, : len(item.values)] = item.values
    scores = np.zeros((len(corpus), longest))
    started = time.perf_counter()
    for index in range(longest):
        rows = np.flatnonzero(lengths > index)
        scores[rows, index] = bank.step(rows=rows, times=times[rows, index], values=values[rows, index])
    elapsed = time.perf_counter() - started
    return [scores[row, : len(item.values)] for row, item in enumerate(corpus)], lengths.sum() / elapsed


def nab_report(*, corpus: list[CorpusFile], scores: list[np.ndarray]) -> dict:
    """NAB scores per profile, per category, leave-one-category-out, and per file (standard profile)."""
    files = [item.labelled for item in corpus]
    categories = sorted({item.category for item in corpus})
    report: dict = {"profiles": {}, "files": {}}
    for profile_name in PROFILES:
        result = corpus_score(files=files, scores=scores, profile_name=profile_name)
        by_category = {
            category: round(
                subset_score(
                    result=result, files=files, names={item.name for item in corpus if item.category == category}
                ),
                2,
            )
            for category in categories
        }
        report["profiles"][profile_name] = {
            "score": round(result.score, 2),
            "threshold": None if math.isinf(result.threshold) else result.threshold,
            "categories": by_category,
            "leave_one_category_out": _leave_one_out(corpus=corpus, scores=scores, profile_name=profile_name),
        }
        if profile_name == "standard":
            for outcome in result.files:
                report["files"][outcome.name] = {
                    "raw": round(outcome.raw, 3),
                    "windows_detected": f"{outcome.true_positives}/{outcome.windows}",
                    "false_positives": outcome.false_positives,
                }
    return report


def _leave_one_out(*, corpus: list[CorpusFile], scores: list[np.ndarray], profile_name: str) -> dict:
    """Each category scored at the threshold best for the other categories, and all of them pooled."""
    profile = PROFILES[profile_name]
    categories = sorted({item.category for item in corpus})
    out: dict = {}
    raw_total = null_total = perfect_total = 0.0
    for category in categories:
        train = [index for index, item in enumerate(corpus) if item.category != category]
        test = [index for index, item in enumerate(corpus) if item.category == category]
        if not train or not test:
            continue
        threshold = best_threshold(
            files=[corpus[i].labelled for i in train], scores=[scores[i] for i in train], profile=profile
        ).threshold
        result = corpus_score(
            files=[corpus[i].labelled for i in test],
            scores=[scores[i] for i in test],
            profile_name=profile_name,
            threshold=threshold,
        )
        out[category] = round(result.score, 2)
        null, perfect = null_and_perfect(files=[corpus[i].labelled for i in test], profile=profile)
        raw_total += result.raw
        null_total += null
        perfect_total += perfect
    if perfect_total != null_total:
        out["pooled"] = round(100 * (raw_total - null_total) / (perfect_total - null_total), 2)
    return out


def machine_temperature_lead_times(*, item: CorpusFile, scores: np.ndarray, level: float) -> dict:
    """When the first detection at `level` fires in each window, relative to the labelled failure; false ones."""
    labels = json.loads((data_dir() / "combined_labels.json").read_text()).get(item.name, [])
    label_times = [datetime.fromisoformat(label).replace(tzinfo=UTC).timestamp() for label in labels]
    detected = np.flatnonzero(scores >= level)
    detected = detected[detected >= item.labelled.probation]
    windows = []
    inside = np.zeros(len(scores), dtype=bool)
    for (first, last), label in zip(item.labelled.windows, label_times, strict=False):
        inside[first : last + 1] = True
        hits = detected[(detected >= first) & (detected <= last)]
        entry = {
            "window_start": _iso(item.times[first]),
            "labelled_failure": _iso(label),
            "window_end": _iso(item.times[last]),
        }
        if len(hits):
            moment = item.times[hits[0]]
            entry["first_detection"] = _iso(moment)
            entry["hours_before_failure"] = round((label - moment) / 3600, 2)
            entry["hours_after_window_start"] = round((moment - item.times[first]) / 3600, 2)
        else:
            entry["first_detection"] = None
        windows.append(entry)
    false_alerts = detected[~inside[detected]]
    return {
        "file": item.name,
        "level": level,
        "windows": windows,
        "false_detections": len(false_alerts),
        "false_detection_times": [_iso(item.times[index]) for index in false_alerts[:50]],
        "points_scored": int(len(scores) - item.labelled.probation),
    }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(float(seconds), UTC).strftime("%Y-%m-%d %H:%M")


def speed(*, detector: str, series: int, steps: int) -> dict:
    """Points per second of one bank holding `series` series at 1 Hz, after its warm-up; memory per series."""
    from apps.alerts.detectors import detector_create
    from apps.alerts.detectors.novelty import WARMUP

    rng = np.random.default_rng(20_260_101)
    bank = detector_create(detector, capacity=series)
    rows = np.arange(series)
    base = rng.normal(50, 10, series)
    start = 1_767_225_600.0  # 2026-01-01
    warmup_started = time.perf_counter()
    for second in range(WARMUP + 1):
        bank.step(rows=rows, times=np.full(series, start + second), values=base + rng.normal(0, 1, series))
    warmup_seconds = time.perf_counter() - warmup_started
    durations = []
    for second in range(WARMUP + 1, WARMUP + 1 + steps):
        values = base + rng.normal(0, 1, series)
        began = time.perf_counter()
        bank.step(rows=rows, times=np.full(series, start + second), values=values)
        durations.append(time.perf_counter() - began)
    packed = [len(bank.row_pack(row=row)) for row in range(0, series, max(1, series // 200))]
    median = statistics.median(durations)
    return {
        "series": series,
        "measured_steps": steps,
        "points_per_second": round(series / median),
        "points_per_second_worst_step": round(series / max(durations)),
        "step_ms_median": round(median * 1000, 2),
        "warmup_seconds_total": round(warmup_seconds, 2),
        "memory_bytes_per_series": bank.bytes_per_series(),
        "packed_state_bytes_median": int(statistics.median(packed)),
        "keeps_up_with_10000_series_at_1hz": series / median >= 10_000,
    }


def run(*, quick: bool = False) -> dict:
    """The benchmark: NAB scores, machine temperature lead times and speed for every detector."""
    from apps.alerts.detectors import DEFAULT_DETECTOR, DETECTORS
    from apps.alerts.detectors.calibration import DEFAULT_SENSITIVITY, sensitivity_level

    allowed = _pin_to_one_core()
    try:
        return _run(quick=quick, level=sensitivity_level(DEFAULT_SENSITIVITY), sensitivity=DEFAULT_SENSITIVITY,
                    default_detector=DEFAULT_DETECTOR, detectors=list(DETECTORS))  # fmt: skip
    finally:
        if allowed:
            os.sched_setaffinity(0, allowed)  # the benchmarks after this one (and their servers) get every core


def _run(*, quick: bool, level: float, sensitivity: float, default_detector: str, detectors: list[str]) -> dict:
    is_smoke = smoke()
    corpus = load_corpus()
    if is_smoke:  # the two shortest files; the lead-time stage runs on the first of them instead
        corpus = sorted(corpus, key=lambda item: len(item.values))[:2]
    series = SMOKE_SERIES if is_smoke else (2_000 if quick else SPEED_SERIES)
    steps = 3 if is_smoke else SPEED_STEPS
    result: dict = {
        "files": len(corpus),
        "windows": sum(len(item.labelled.windows) for item in corpus),
        "default_detector": default_detector,
        "default_sensitivity": sensitivity,
        "default_level": level,
        "published_standard_scores": {
            "ARTime": 74.9,
            "Numenta HTM": 70.5,
            "CAD OSE": 69.9,
            "KNN CAD": 58.0,
            "Relative Entropy": 54.6,
        },
        "detectors": {},
    }
    for name in detectors:
        _log(f"{name}: scoring {len(corpus)} files")
        scores, rate = corpus_scores(detector=name, corpus=corpus)
        entry = nab_report(corpus=corpus, scores=scores)
        entry["corpus_points_per_second"] = round(rate)
        machine = [index for index, item in enumerate(corpus) if item.name == MACHINE_FILE] or [0]
        entry["machine_temperature"] = machine_temperature_lead_times(
            item=corpus[machine[0]], scores=scores[machine[0]], level=level
        )
        _log(f"{name}: standard {entry['profiles']['standard']['score']}; speed with {series} series")
        entry["speed"] = speed(detector=name, series=series, steps=steps)
        result["detectors"][name] = entry
    return result


def _pin_to_one_core() -> set[int] | None:
    """Measure on one core (the other cores serve other work); returns the cores allowed before."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = set(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {max(allowed)})
    return allowed
