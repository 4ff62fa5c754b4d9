"""InfluxDB compatibility, tested against InfluxDB itself: every body of influx_corpus.toml goes to a private
InfluxDB 1.x (started on a free port, as bench/influx.py starts it) and to our `/write`, and what each stored is
read back and compared.

InfluxDB's side is read with `SELECT * FROM /.*/ GROUP BY *`, ours from the points and series tables. Both
become a multiset of (metric, tags, value, time): InfluxDB's measurement and field become our metric name
(`measurement.field`, or `measurement` for a field called `value`), numbers and booleans floats, times
microseconds (ours are stored to the microsecond), and a time within the request's window, on the precision's
grid, the word "now". String fields are left out of InfluxDB's side: we do not store them (docs/ingestion.md,
"Differences from InfluxDB"). The HTTP statuses are compared too.

A case where we differ on purpose says so in the corpus (`differs`): the expected statuses and points found
on one side only, and `because`, the start of the bullet of "Differences from InfluxDB" that gives the reason.
Any other difference, or an expected one that went away, fails the test with the case's name.
"""

from __future__ import annotations

import http.client
import json
import time
import tomllib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.ingestion.factories import source_with_key, stored_points

CORPUS = Path(__file__).with_name("influx_corpus.toml")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "ingestion.md"
DIFFERENCES_HEADING = "## Differences from InfluxDB"
# InfluxDB 1.x's multipliers: it reads any other precision (us and ns included) as nanoseconds.
INFLUX_UNIT_NS = {"u": 1_000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
OUR_UNIT_NS = {"us": 1_000, **INFLUX_UNIT_NS}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RETENTION_DAYS = 36_500
NOW_SLACK_NS = 50_000_000  # clock reads around a request: the server's "now" falls within them, give or take

Point = tuple[str, tuple[tuple[str, str], ...], float, int | str]


@dataclass
class Outcome:
    """What one side made of a case: the write's status and message, and the points it stored."""

    status: int
    message: str
    points: Counter


def corpus_cases() -> list[dict]:
    """The corpus, in file order."""
    return tomllib.loads(CORPUS.read_text(encoding="utf-8"))["case"]


def differences_section() -> str:
    """The text of docs/ingestion.md's "Differences from InfluxDB" section."""
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(DIFFERENCES_HEADING)
    end = text.find("\n## ", start + len(DIFFERENCES_HEADING))
    return text[start : end if end >= 0 else len(text)]


def test_the_corpus_is_well_formed_and_every_difference_is_documented():
    cases = corpus_cases()
    names = [case["name"] for case in cases]
    assert len(names) == len(set(names)), [name for name, count in Counter(names).items() if count > 1]
    section = " ".join(differences_section().split())
    for case in cases:
        assert set(case) <= {"name", "body", "precision", "setup", "differs"}, case["name"]
        differs = case.get("differs")
        if differs is not None:
            assert set(differs) <= {"because", "status", "influx_only", "ours_only"}, case["name"]
            assert len(differs) > 1, f"{case['name']}: a difference needs what differs"
            assert f"**{differs['because']}" in section, (
                f"{case['name']}: no bullet of docs/ingestion.md's Differences from InfluxDB starts with "
                f"**{differs['because']}"
            )


# --- InfluxDB's side ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def influx():
    from bench.influx import Influx, InfluxUnavailable

    try:
        server = Influx(cache_max_memory="256m")
    except InfluxUnavailable as error:
        pytest.fail(f"This test compares our /write with a real InfluxDB 1.x and needs its influxd: {error}")
    yield server
    server.stop()


def _influx_request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "text/plain"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _influx_query(port: int, database: str, text: str) -> dict:
    status, body = _influx_request(port, "POST", "/query?" + urlencode({"db": database, "q": text, "epoch": "ns"}))
    assert status == 200, (text, body)
    return json.loads(body)["results"][0]


def _influx_outcome(port: int, index: int, case: dict) -> Outcome:
    database = f"case{index}"
    _influx_query(port, database, f'CREATE DATABASE "{database}"')
    query = {"db": database, **({"precision": case["precision"]} if "precision" in case else {})}
    path = "/write?" + urlencode(query)
    if "setup" in case:
        _influx_request(port, "POST", path, case["setup"].encode())
    before = time.time_ns()
    status, answer = _influx_request(port, "POST", path, case["body"].encode())
    window = (before, time.time_ns(), INFLUX_UNIT_NS.get(case.get("precision", ""), 1))
    points: Counter = Counter()
    for series in _influx_query(port, database, "SELECT * FROM /(?s).*/ GROUP BY *").get("series", []):
        tags = tuple(sorted((key, value) for key, value in series.get("tags", {}).items() if value != ""))
        fields = series["columns"][1:]
        for row in series["values"]:
            for field, value in zip(fields, row[1:], strict=True):
                if value is None or isinstance(value, str):
                    continue  # no value in this row, or a string (we do not store strings)
                metric = series["name"] if field == "value" else f"{series['name']}.{field}"
                points[(metric, tags, float(value), _time_normalised(row[0], window))] += 1
    message = json.loads(answer).get("error", "") if answer.strip() else ""
    return Outcome(status, message, points)


def _time_normalised(time_ns: int, window: tuple[int, int, int]) -> int | str:
    """Microseconds since 1970, or "now" for the server's own time at the precision (a line without one)."""
    before, after, unit = window
    low = before - NOW_SLACK_NS
    if low - low % unit <= time_ns <= after + NOW_SLACK_NS and time_ns % unit == 0:
        return "now"
    return time_ns // 1000


# --- our side ----------------------------------------------------------------------------------------


def _our_outcome(client, index: int, case: dict) -> Outcome:
    # A source refuses points older than it keeps any data; these keep daily rollups for a century, as a source
    # loading history would, so that the corpus can use InfluxDB's own test times (1970s) as they are.
    source, key = source_with_key(slug=f"influx-case-{index}", raw_retention_days=RETENTION_DAYS)
    query = {"db": source.slug, **({"precision": case["precision"]} if "precision" in case else {})}
    path = "/write?" + urlencode(query)
    headers = {"Authorization": f"Token {key}"}
    if "setup" in case:
        client.post(path, data=case["setup"].encode(), content_type="text/plain", headers=headers)
    before = time.time_ns()
    response = client.post(path, data=case["body"].encode(), content_type="text/plain", headers=headers)
    window = (before, time.time_ns(), OUR_UNIT_NS.get(case.get("precision", ""), 1))
    points: Counter = Counter()
    for metric, labels, moment, value, _ in stored_points(source=source):
        micros = (moment - EPOCH) // timedelta(microseconds=1)
        points[(metric, tuple(sorted(labels.items())), value, _time_normalised(micros * 1000, window))] += 1
    message = response.json().get("error", "") if response.status_code != 204 else ""
    return Outcome(response.status_code, message, points)


# --- the comparison ----------------------------------------------------------------------------------


def _difference(theirs: Outcome, ours: Outcome) -> dict:
    """The difference in the corpus's terms: statuses if they differ, points found on one side only."""
    difference: dict = {}
    if theirs.status != ours.status:
        difference["status"] = [theirs.status, ours.status]
    for side, points in (("influx_only", theirs.points - ours.points), ("ours_only", ours.points - theirs.points)):
        if points:
            difference[side] = sorted(points.elements(), key=repr)
    return difference


def _expected(case: dict) -> dict:
    differs = {key: value for key, value in case.get("differs", {}).items() if key != "because"}
    for side in ("influx_only", "ours_only"):
        if side in differs:
            differs[side] = sorted(
                (
                    (metric, tuple(sorted(tags.items())), float(value), moment)
                    for metric, tags, value, moment in differs[side]
                ),
                key=repr,
            )
    return differs


def _toml_points(points: list[Point]) -> str:
    """Points as the corpus writes them, so that a new difference can be reviewed and pasted."""
    items = []
    for metric, tags, value, moment in points:
        tag_table = ", ".join(
            f"{json.dumps(k, ensure_ascii=False)} = {json.dumps(v, ensure_ascii=False)}" for k, v in tags
        )
        items.append(f"[{json.dumps(metric, ensure_ascii=False)}, {{{tag_table}}}, {value!r}, {json.dumps(moment)}]")
    return "[" + ", ".join(items) + "]"


def _report(case: dict, theirs: Outcome, ours: Outcome, actual: dict, expected: dict) -> str:
    lines = [
        f"case {case['name']!r}: body {case['body']!r}"
        + (f" precision {case['precision']}" if "precision" in case else ""),
        f"  InfluxDB: {theirs.status} {theirs.message[:300]!r}",
        f"  ours:     {ours.status} {ours.message[:300]!r}",
        f"  expected difference: {expected or 'none'}",
        "  actual difference, as the corpus would write it:",
    ]
    if "status" in actual:
        lines.append(f"    differs.status = {actual['status']}")
    for side in ("influx_only", "ours_only"):
        if side in actual:
            lines.append(f"    differs.{side} = {_toml_points(actual[side])}")
    if not actual:
        lines.append("    (none)")
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.django_db
def test_every_corpus_body_stores_what_influxdb_stores_or_differs_as_documented(influx, client):
    cases = corpus_cases()
    # InfluxDB answers in threads of its own while ours run here, in the test's transaction.
    with ThreadPoolExecutor(max_workers=4) as pool:
        pending = [pool.submit(_influx_outcome, influx.port, index, case) for index, case in enumerate(cases)]
        ours = [_our_outcome(client, index, case) for index, case in enumerate(cases)]
        theirs = [future.result() for future in pending]
    problems = []
    for case, their_outcome, our_outcome in zip(cases, theirs, ours, strict=True):
        actual, expected = _difference(their_outcome, our_outcome), _expected(case)
        if actual != expected:
            problems.append(_report(case, their_outcome, our_outcome, actual, expected))
    assert not problems, f"{len(problems)} of {len(cases)} cases differ from the corpus:\n\n" + "\n\n".join(problems)
