"""The demo data simulator: record shapes and determinism, factory faults, sinks, runner pacing and the command."""

from __future__ import annotations

import io
import json
import math
import re
import shlex
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.ingestion.management.commands import simulate as simulate_command
from apps.ingestion.simulator.runner import simulation_run
from apps.ingestion.simulator.scenarios import (
    BusinessScenario,
    FactoryScenario,
    MarketingScenario,
    Record,
    Scenario,
    scenario_names_parse,
    scenarios_build,
)
from apps.ingestion.simulator.sinks import (
    HttpSink,
    HttpSinkError,
    LineProtocolSink,
    LogSink,
    NdjsonSink,
    line_protocol_line,
)
from tests.conftest import closed_port

MONDAY_MORNING = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
FACTORY_MEASURES = {"temperature", "vibration", "pressure", "flow", "power"}


def _records_over(scenario: Scenario, *, seconds: int, start: datetime = MONDAY_MORNING) -> list[Record]:
    records: list[Record] = []
    for second in range(seconds):
        records.extend(scenario.records_for_tick(at=start + timedelta(seconds=second), tick_seconds=1.0))
    return records


def _parse_time(text: str) -> datetime:
    assert text.endswith("Z"), text
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0)
    return moment


def _assert_ingest_shape(record: Record, *, labels: set[str], measures: set[str]) -> None:
    _parse_time(record["time"])
    for label in labels:
        assert isinstance(record[label], str), (label, record)
        assert record[label]
    for measure in measures:
        value = record[measure]
        assert isinstance(value, int | float), (measure, record)
        assert not isinstance(value, bool)
        assert math.isfinite(value), (measure, record)


# --- scenarios -------------------------------------------------------------------------------------------------


def test_factory_sends_one_record_per_device_per_second_with_the_ingest_shape():
    scenario = FactoryScenario(seed=1, devices=100, faults_per_device_hour=0)
    start = MONDAY_MORNING
    records = _records_over(scenario, seconds=3, start=start)

    assert len(records) == 300
    for record in records:
        assert set(record) == {"time", "device", "facility", *FACTORY_MEASURES}
        _assert_ingest_shape(record, labels={"device", "facility"}, measures=FACTORY_MEASURES)
        assert start <= _parse_time(record["time"]) < start + timedelta(seconds=3)
        assert 50 < record["temperature"] < 90
        assert 0 < record["vibration"] < 5
        assert 4 < record["pressure"] < 8
        assert record["flow"] > 0
        assert record["power"] > 1
    assert len({record["device"] for record in records}) == 100
    assert {record["facility"] for record in records} == {"f1", "f2", "f3", "f4", "f5"}
    per_device = defaultdict(list)
    for record in records:
        per_device[record["device"]].append(_parse_time(record["time"]))
    assert all(len(times) == 3 for times in per_device.values())
    assert all(times[1] - times[0] == timedelta(seconds=1) for times in per_device.values())
    assert [record["time"] for record in records] == sorted(record["time"] for record in records)


def test_factory_device_names_look_like_machine_numbers():
    records = _records_over(FactoryScenario(seed=3, devices=12), seconds=1)

    names = sorted(record["device"] for record in records)
    numbers = sorted(int(name.rsplit("-", 1)[1]) for name in names)
    assert numbers == list(range(1, 13))
    assert all(len(name.rsplit("-", 1)[1]) == 3 for name in names)


def test_marketing_events_have_the_ingest_shape_and_amounts_only_on_purchases():
    scenario = MarketingScenario(seed=5, mean_rate=400)
    records = _records_over(scenario, seconds=60, start=MONDAY_MORNING.replace(hour=18))

    assert len(records) > 5000
    for record in records:
        assert set(record) - {"amount"} == {"time", "event", "segment", "channel", "country", "count"}
        _assert_ingest_shape(record, labels={"event", "segment", "channel", "country"}, measures={"count"})
        assert record["count"] == 1
        assert record["event"] in {"page_view", "add_to_cart", "purchase", "signup"}
        assert record["segment"] in {"b2b", "b2c", "enterprise"}
        assert record["channel"] in {"web", "ios", "android"}
        if record["event"] == "purchase":
            _assert_ingest_shape(record, labels=set(), measures={"amount"})
            assert record["amount"] > 0
            assert round(record["amount"], 2) == record["amount"]
        else:
            assert "amount" not in record
    share = {event: sum(r["event"] == event for r in records) / len(records) for event in ("page_view", "purchase")}
    assert share["page_view"] > 0.75
    assert 0.005 < share["purchase"] < 0.08
    assert 2 <= len({record["country"] for record in records}) <= 10
    enterprise = [r["amount"] for r in records if r["event"] == "purchase" and r["segment"] == "enterprise"]
    consumer = [r["amount"] for r in records if r["event"] == "purchase" and r["segment"] == "b2c"]
    assert enterprise
    assert sorted(enterprise)[len(enterprise) // 2] > 10 * sorted(consumer)[len(consumer) // 2]


def test_business_orders_and_invoices_have_their_own_measures():
    records = _records_over(BusinessScenario(seed=9, mean_rate=50), seconds=60, start=MONDAY_MORNING)

    kinds = {record["kind"] for record in records}
    assert kinds == {"order", "invoice"}
    for record in records:
        labels = {"kind", "region", "product_line", "currency"}
        assert record["currency"] in {"EUR", "USD"}
        assert record["amount"] > 0
        if record["kind"] == "order":
            assert set(record) == {"time", *labels, "amount", "quantity"}
            assert isinstance(record["quantity"], int)
            assert record["quantity"] >= 1
            _assert_ingest_shape(record, labels=labels, measures={"amount", "quantity"})
        else:
            assert set(record) == {"time", *labels, "amount", "days_to_due"}
            assert record["days_to_due"] in {14, 30, 45, 60, 90}
            _assert_ingest_shape(record, labels=labels, measures={"amount", "days_to_due"})


SCENARIO_FACTORIES = {
    "factory": lambda seed: FactoryScenario(seed=seed, devices=20, faults_per_device_hour=5),
    "marketing": lambda seed: MarketingScenario(seed=seed, mean_rate=100),
    "business": lambda seed: BusinessScenario(seed=seed, mean_rate=50),
}


@pytest.mark.parametrize("name", sorted(SCENARIO_FACTORIES))
def test_scenarios_are_deterministic_for_a_seed(name):
    first = _records_over(SCENARIO_FACTORIES[name](42), seconds=30)
    again = _records_over(SCENARIO_FACTORIES[name](42), seconds=30)
    other = _records_over(SCENARIO_FACTORIES[name](43), seconds=30)

    assert first
    assert first == again
    assert first != other


def test_event_rates_average_to_the_configured_rate_and_follow_the_day():
    marketing = MarketingScenario(seed=1, mean_rate=100)
    business = BusinessScenario(seed=1, mean_rate=100)
    minutes_of_week = [MONDAY_MORNING + timedelta(minutes=m) for m in range(0, 7 * 24 * 60, 10)]

    assert sum(marketing.expected_rate(at=at) for at in minutes_of_week) / len(minutes_of_week) == pytest.approx(100)
    assert sum(business.expected_rate(at=at) for at in minutes_of_week) / len(minutes_of_week) == pytest.approx(100)
    us_evening = datetime(2024, 5, 6, 1, 0, tzinfo=UTC)  # 20:00 in New York, 02:00 in Berlin
    europe_evening = datetime(2024, 5, 6, 19, 0, tzinfo=UTC)  # 20:00 in Berlin, 14:00 in New York
    europe_dawn = datetime(2024, 5, 6, 4, 0, tzinfo=UTC)  # 05:00 in Berlin, 23:00 in New York
    assert marketing.expected_rate(at=europe_dawn) < marketing.expected_rate(at=europe_evening) / 2
    saturday_noon = datetime(2024, 5, 11, 12, 0, tzinfo=UTC)
    assert business.expected_rate(at=saturday_noon) < business.expected_rate(at=MONDAY_MORNING) / 4
    assert business.expected_rate(at=us_evening) < business.expected_rate(at=MONDAY_MORNING)

    counted = len(_records_over(MarketingScenario(seed=2, mean_rate=100), seconds=120, start=MONDAY_MORNING))
    expected = sum(marketing.expected_rate(at=MONDAY_MORNING + timedelta(seconds=s + 0.5)) for s in range(120))
    assert counted == pytest.approx(expected, rel=0.1)


@pytest.mark.parametrize("scenario_class", [MarketingScenario, BusinessScenario])
def test_events_of_one_tick_never_share_a_millisecond(scenario_class):
    # Storage keeps one point per series and instant, so two events at one millisecond with the same labels
    # would be stored as one: the demo's dashboards then counted one event less than was generated.
    scenario = scenario_class(seed=3, mean_rate=10)
    for second in range(50):
        records = scenario.records_at(at=MONDAY_MORNING + timedelta(seconds=second), count=400)
        times = [record["time"] for record in records]
        assert len(set(times)) == len(times) == 400
        assert times == sorted(times)


def test_scenarios_build_shares_the_rate_between_event_scenarios():
    everything = {scenario.name: scenario for scenario in scenarios_build(names=["all"], seed=1, rate=100, devices=7)}
    business_only = scenarios_build(names=["business"], seed=1, rate=100)

    assert list(everything) == ["factory", "marketing", "business"]
    assert everything["marketing"].mean_rate + everything["business"].mean_rate == pytest.approx(100)
    assert everything["marketing"].mean_rate > 4 * everything["business"].mean_rate
    assert everything["factory"].expected_rate(at=MONDAY_MORNING) == 7
    assert business_only[0].mean_rate == 100
    assert [s.source_slug for s in everything.values()] == ["demo-factory", "demo-marketing", "demo-business"]


def test_scenario_names_accept_lists_and_all_and_reject_unknown_names():
    assert scenario_names_parse(values=["business,factory"]) == ["factory", "business"]
    assert scenario_names_parse(values=["marketing", "all"]) == ["factory", "marketing", "business"]
    with pytest.raises(ValueError, match="choose from factory, marketing, business or all"):
        scenario_names_parse(values=["factory,robots"])


# --- factory faults --------------------------------------------------------------------------------------------


def _series_by_device(records: list[Record]) -> dict[str, list[Record]]:
    series: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        series[str(record["device"])].append(record)
    return series


def _mean(records: list[Record], key: str) -> float:
    return sum(float(record[key]) for record in records) / len(records)


def test_factory_fault_drifts_then_fails_with_power_near_zero_then_recovers():
    scenario = FactoryScenario(seed=7, devices=8, faults_per_device_hour=3.0)
    series = _series_by_device(_records_over(scenario, seconds=2 * 3600))

    failed = 0
    recovered = 0
    for samples in series.values():
        first_down = next((i for i, sample in enumerate(samples) if sample["power"] < 1.0), None)
        if first_down is None or first_down < 15 * 60:
            continue
        failed += 1
        healthy = samples[:60]
        late_drift = samples[first_down - 90 : first_down - 45]
        temperature_rise = _mean(late_drift, "temperature") - _mean(healthy, "temperature")
        vibration_rise = _mean(late_drift, "vibration") - _mean(healthy, "vibration")
        assert temperature_rise > 8 or vibration_rise > 3, (temperature_rise, vibration_rise)
        spike = samples[first_down - 45 : first_down]
        assert (
            max(s["temperature"] for s in spike) > max(s["temperature"] for s in healthy) + 10
            or max(s["vibration"] for s in spike) > max(s["vibration"] for s in healthy) + 5
        )
        down = samples[first_down : first_down + 60]
        assert all(s["power"] < 0.5 for s in down)
        assert all(s["flow"] == 0 for s in down)
        if any(s["power"] > 0.5 * _mean(healthy, "power") for s in samples[first_down:]):
            recovered += 1
    assert failed >= 3
    assert recovered >= 1


def test_factory_faults_are_rare_by_default_but_happen():
    scenario = FactoryScenario(seed=11, devices=100, sample_interval_seconds=30)
    records: list[Record] = []
    for tick in range(6 * 120):
        records.extend(scenario.records_for_tick(at=MONDAY_MORNING + timedelta(seconds=30 * tick), tick_seconds=30))

    down = [record for record in records if record["power"] < 1.0]
    assert len(records) == 100 * 6 * 120
    assert down
    assert len(down) / len(records) < 0.05


def test_factory_without_faults_never_goes_down():
    scenario = FactoryScenario(seed=11, devices=20, faults_per_device_hour=0)
    records = _records_over(scenario, seconds=1800)

    assert min(record["power"] for record in records) > 5


# --- stdout sinks ----------------------------------------------------------------------------------------------


def test_ndjson_sink_writes_one_self_describing_object_per_line():
    stream = io.StringIO()
    sink = NdjsonSink(stream=stream)
    factory = _records_over(FactoryScenario(seed=1, devices=3), seconds=2)
    marketing = MarketingScenario(seed=1, mean_rate=10).records_at(at=MONDAY_MORNING, count=4)

    sink.write(source_slug="demo-factory", records=factory)
    sink.write(source_slug="demo-marketing", records=marketing)
    sink.write(source_slug="demo-business", records=[])
    sink.close()

    lines = stream.getvalue().splitlines()
    parsed = [json.loads(line) for line in lines]
    assert len(parsed) == 10
    assert [p.pop("source") for p in parsed] == ["demo-factory"] * 6 + ["demo-marketing"] * 4
    assert parsed == factory + marketing


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, index = [], "", 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current += text[index : index + 2]
            index += 2
            continue
        if char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
        index += 1
    parts.append(current)
    return parts


def _unescape(text: str) -> str:
    """InfluxDB 1.x's reading: a backslash before a comma, '=', space or quote goes; any other stays."""
    return re.sub(r'\\([, ="])', r"\1", text)


def _parse_line_protocol(line: str) -> tuple[str, dict[str, str], dict[str, float], int]:
    series, fields_text, timestamp = _split_unescaped(line, " ")
    measurement, *tag_items = _split_unescaped(series, ",")
    tags: dict[str, str] = {}
    for item in tag_items:
        key, value = _split_unescaped(item, "=")
        tags[_unescape(key)] = _unescape(value)
    fields: dict[str, float] = {}
    for item in _split_unescaped(fields_text, ","):
        key, value = _split_unescaped(item, "=")
        # Plain decimal floats only: no integer suffix, no exponent.
        assert re.fullmatch(r"-?\d+\.\d+", value), value
        fields[_unescape(key)] = float(value)
    return _unescape(measurement), tags, fields, int(timestamp)


def test_line_protocol_sink_output_parses_back_to_the_records():
    stream = io.StringIO()
    sink = LineProtocolSink(stream=stream)
    factory = _records_over(FactoryScenario(seed=1, devices=3), seconds=2)
    business = BusinessScenario(seed=1, mean_rate=10).records_at(at=MONDAY_MORNING, count=5)

    sink.write(source_slug="demo-factory", records=factory)
    sink.write(source_slug="demo-business", records=business)
    sink.close()

    lines = stream.getvalue().splitlines()
    assert len(lines) == 11
    for line, record in zip(lines, factory + business, strict=True):
        measurement, tags, fields, timestamp_ns = _parse_line_protocol(line)
        assert measurement in {"demo_factory", "demo_business"}
        assert tags == {key: value for key, value in record.items() if isinstance(value, str) and key != "time"}
        assert fields == {key: float(value) for key, value in record.items() if not isinstance(value, str)}
        moment = _parse_time(record["time"])
        assert timestamp_ns == round(moment.timestamp() * 1000) * 1_000_000
    for line in lines:
        series = _split_unescaped(line, " ")[0]
        tag_keys = [_split_unescaped(tag, "=")[0] for tag in _split_unescaped(series, ",")[1:]]
        assert tag_keys == sorted(tag_keys)


def test_line_protocol_escapes_tags_and_never_writes_exponents():
    record = {"time": "2024-05-06T08:00:00.123Z", "hall name": "north hall,2=b\\x", "tiny": 1e-07, "huge": 1e16}

    line = line_protocol_line(measurement="demo plant,1", record=record)

    assert line.startswith("demo\\ plant\\,1,hall\\ name=north\\ hall\\,2\\=b\\x ")  # 1.x keeps a backslash as is
    measurement, tags, fields, timestamp_ns = _parse_line_protocol(line)
    assert measurement == "demo plant,1"
    assert tags == {"hall name": "north hall,2=b\\x"}
    assert fields == {"tiny": 1e-07, "huge": 1e16}
    assert "tiny=0.0000001" in line
    assert "huge=10000000000000000.0" in line
    assert timestamp_ns == 1714982400123000000


def test_line_protocol_refuses_records_without_measures_and_newlines_in_tags():
    with pytest.raises(ValueError, match="numeric field"):
        line_protocol_line(measurement="m", record={"time": "2024-05-06T08:00:00Z", "device": "a"})
    with pytest.raises(ValueError, match="newline"):
        line_protocol_line(measurement="m", record={"time": "2024-05-06T08:00:00Z", "device": "a\nb", "v": 1})


def test_log_sink_reports_records_per_second_per_scenario():
    now = [0.0]
    lines: list[str] = []
    sink = LogSink(
        display_names={"demo-factory": "factory", "demo-marketing": "marketing"},
        emit=lines.append,
        clock=lambda: now[0],
    )

    sink.write(source_slug="demo-factory", records=[{}] * 1000)
    sink.write(source_slug="demo-marketing", records=[{}] * 234)
    now[0] = 0.5
    sink.write(source_slug="demo-factory", records=[{}] * 1000)
    assert lines == []
    now[0] = 2.0
    sink.write(source_slug="demo-factory", records=[{}] * 10)
    now[0] = 2.1
    sink.close()

    assert lines == [
        "simulate: 1,117 records/s (factory 1000, marketing 117)",
        "simulate: 10 records/s (factory 10)",
    ]


# --- http sink -------------------------------------------------------------------------------------------------


@dataclass
class IngestServer:
    """A local HTTP server that records requests and answers from a script (then 200)."""

    base_url: str
    requests: list[dict] = field(default_factory=list)
    responses: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def ingest_server() -> Iterator[IngestServer]:
    state = IngestServer(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            status, headers, payload = state.responses.pop(0) if state.responses else (200, {}, b'{"accepted":1}')
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_sink_posts_a_json_array_with_the_sources_write_key(ingest_server):
    sink = HttpSink(base_url=ingest_server.base_url + "/", write_keys={"demo-factory": "key-123"}, sleep=_no_sleep)
    records = _records_over(FactoryScenario(seed=1, devices=3), seconds=1)

    sink.write(source_slug="demo-factory", records=records)
    sink.close()

    (request,) = ingest_server.requests
    assert request["path"] == "/api/v1/sources/demo-factory/ingest"
    assert request["headers"]["Authorization"] == "Bearer key-123"
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == records


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected sleep({seconds})")


def test_http_sink_retries_429_honouring_retry_after(ingest_server):
    ingest_server.responses = [(429, {"Retry-After": "0"}, b"slow down")]
    sleeps: list[float] = []
    sink = HttpSink(base_url=ingest_server.base_url, write_keys={"demo-factory": "k"}, sleep=sleeps.append)

    sink.write(source_slug="demo-factory", records=[{"time": "2024-05-06T08:00:00Z", "v": 1}])

    assert len(ingest_server.requests) == 2
    assert sleeps == [0.0]
    assert ingest_server.requests[0]["body"] == ingest_server.requests[1]["body"]


def test_http_sink_retries_server_errors_with_exponential_backoff(ingest_server):
    ingest_server.responses = [(503, {}, b""), (502, {}, b"")]
    sleeps: list[float] = []
    sink = HttpSink(base_url=ingest_server.base_url, write_keys={"demo-factory": "k"}, sleep=sleeps.append)

    sink.write(source_slug="demo-factory", records=[{"time": "2024-05-06T08:00:00Z", "v": 1}])

    assert len(ingest_server.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_http_sink_raises_a_clear_error_on_400_without_retrying(ingest_server):
    ingest_server.responses = [(400, {"Content-Type": "application/json"}, b'{"detail": "time: not ISO 8601"}')]
    sink = HttpSink(base_url=ingest_server.base_url, write_keys={"demo-factory": "secret-key"}, sleep=_no_sleep)

    with pytest.raises(HttpSinkError) as caught:
        sink.write(source_slug="demo-factory", records=[{"time": "2024-05-06T08:00:00Z", "v": 1}])

    assert caught.value.status == 400
    message = str(caught.value)
    assert "HTTP 400" in message
    assert "/api/v1/sources/demo-factory/ingest" in message
    assert "time: not ISO 8601" in message
    assert "secret-key" not in message
    assert len(ingest_server.requests) == 1


def test_http_sink_does_not_follow_redirects(ingest_server):
    ingest_server.responses = [(302, {"Location": "/elsewhere"}, b"")]
    sink = HttpSink(base_url=ingest_server.base_url, write_keys={"demo-factory": "k"}, sleep=_no_sleep)

    with pytest.raises(HttpSinkError, match="redirects"):
        sink.write(source_slug="demo-factory", records=[{"time": "2024-05-06T08:00:00Z", "v": 1}])
    assert len(ingest_server.requests) == 1


def test_http_sink_gives_up_after_retrying_connection_errors():
    sleeps: list[float] = []
    sink = HttpSink(
        base_url=f"http://127.0.0.1:{closed_port()}",
        write_keys={"demo-factory": "k"},
        max_attempts=3,
        sleep=sleeps.append,
    )

    with pytest.raises(HttpSinkError, match="after 3 attempts"):
        sink.write(source_slug="demo-factory", records=[{"time": "2024-05-06T08:00:00Z", "v": 1}])
    assert sleeps == [0.5, 1.0]


def test_http_sink_needs_a_write_key_for_the_source(ingest_server):
    sink = HttpSink(base_url=ingest_server.base_url, write_keys={"demo-factory": "k"})

    with pytest.raises(HttpSinkError, match="--write-key demo-marketing=KEY"):
        sink.write(source_slug="demo-marketing", records=[{"time": "2024-05-06T08:00:00Z", "count": 1}])
    assert ingest_server.requests == []


@pytest.mark.parametrize("url", ["ftp://example.com", "file:///etc/passwd", "127.0.0.1:8000", "http://"])
def test_http_sink_accepts_only_http_and_https_urls(url):
    with pytest.raises(ValueError, match="http:// or https://"):
        HttpSink(base_url=url, write_keys={})


# --- runner ----------------------------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that only moves when slept on or advanced."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RecordingSink:
    """Keeps every batch with the (fake) wall time it arrived at."""

    def __init__(self, clock=lambda: 0.0) -> None:
        self.batches: list[tuple[str, list[Record], float]] = []
        self.closed = False
        self._clock = clock

    def write(self, *, source_slug: str, records: list[Record]) -> None:
        self.batches.append((source_slug, records, self._clock()))

    def close(self) -> None:
        self.closed = True


def test_realtime_run_writes_each_window_after_it_closes_and_stops_on_time():
    fake = FakeClock()
    sink = RecordingSink(fake.clock)

    summary = simulation_run(
        scenarios=[FactoryScenario(seed=1, devices=2)],
        sink=sink,
        duration_seconds=5,
        realtime=True,
        start=MONDAY_MORNING,
        clock=fake.clock,
        sleep=fake.sleep,
    )

    assert fake.now == pytest.approx(5.0)
    assert summary.ticks == 5
    assert summary.records_by_slug == {"demo-factory": 10}
    assert not summary.interrupted
    assert sink.closed
    for tick, (_, records, written_at) in enumerate(sink.batches):
        assert written_at == pytest.approx(tick + 1)
        for record in records:
            offset = (_parse_time(record["time"]) - MONDAY_MORNING).total_seconds()
            assert tick <= offset < tick + 1


def test_realtime_pacing_does_not_drift_when_ticks_are_slow():
    fake = FakeClock()

    class SlowScenario:
        name = "slow"
        source_slug = "demo-slow"

        def expected_rate(self, *, at: datetime) -> float:
            return 1.0

        def records_for_tick(self, *, at: datetime, tick_seconds: float) -> list[Record]:
            fake.now += 0.4  # generating takes 40 % of a tick
            return [{"time": at.isoformat(), "v": 1}]

    summary = simulation_run(
        scenarios=[SlowScenario()],
        sink=RecordingSink(),
        duration_seconds=20,
        realtime=True,
        start=MONDAY_MORNING,
        clock=fake.clock,
        sleep=fake.sleep,
    )

    assert summary.ticks == 20
    assert 20.0 <= fake.now <= 20.5
    assert all(0.55 <= seconds <= 1.0 for seconds in fake.sleeps[1:])


def test_realtime_run_with_the_real_clock_ends_close_to_the_requested_duration():
    sink = RecordingSink()

    summary = simulation_run(
        scenarios=[FactoryScenario(seed=1, devices=1)],
        sink=sink,
        duration_seconds=0.6,
        realtime=True,
        tick_seconds=0.2,
    )

    assert summary.ticks == 3
    assert 0.55 <= summary.wall_seconds < 1.2
    assert summary.simulated_seconds == pytest.approx(0.6)


def test_backfill_covers_the_span_without_sleeping():
    sink = RecordingSink()

    summary = simulation_run(
        scenarios=scenarios_build(names=["factory", "marketing"], seed=3, rate=20, devices=3),
        sink=sink,
        duration_seconds=10,
        realtime=False,
        start=MONDAY_MORNING,
        sleep=_no_sleep,
    )

    assert summary.ticks == 10
    assert summary.records_by_slug["demo-factory"] == 30
    assert summary.records_by_slug["demo-marketing"] > 0
    times = [_parse_time(record["time"]) for _, records, _ in sink.batches for record in records]
    assert min(times) >= MONDAY_MORNING
    assert max(times) < MONDAY_MORNING + timedelta(seconds=10)
    assert sink.closed


def test_interrupt_stops_cleanly_and_closes_the_sink():
    sink = RecordingSink()
    factory = FactoryScenario(seed=1, devices=2)
    calls = [0]

    class InterruptedScenario:
        name = "factory"
        source_slug = "demo-factory"

        def expected_rate(self, *, at: datetime) -> float:
            return 2.0

        def records_for_tick(self, *, at: datetime, tick_seconds: float) -> list[Record]:
            calls[0] += 1
            if calls[0] == 4:
                raise KeyboardInterrupt
            return factory.records_for_tick(at=at, tick_seconds=tick_seconds)

    summary = simulation_run(
        scenarios=[InterruptedScenario()], sink=sink, duration_seconds=60, realtime=False, start=MONDAY_MORNING
    )

    assert summary.interrupted
    assert summary.ticks == 3
    assert summary.records_by_slug == {"demo-factory": 6}
    assert [len(records) for _, records, _ in sink.batches] == [6]  # what was generated is written, then closed
    assert sink.closed


def test_backfill_combines_ticks_into_larger_batches_and_realtime_does_not():
    backfill_sink = RecordingSink()
    simulation_run(
        scenarios=[FactoryScenario(seed=1, devices=3)],
        sink=backfill_sink,
        duration_seconds=10,
        realtime=False,
        start=MONDAY_MORNING,
        backfill_batch_records=12,
    )
    fake = FakeClock()
    realtime_sink = RecordingSink()
    simulation_run(
        scenarios=[FactoryScenario(seed=1, devices=3)],
        sink=realtime_sink,
        duration_seconds=10,
        realtime=True,
        start=MONDAY_MORNING,
        backfill_batch_records=12,
        clock=fake.clock,
        sleep=fake.sleep,
    )

    assert [len(records) for _, records, _ in backfill_sink.batches] == [12, 12, 6]
    assert [len(records) for _, records, _ in realtime_sink.batches] == [3] * 10
    backfilled = [record for _, records, _ in backfill_sink.batches for record in records]
    assert backfilled == [record for _, records, _ in realtime_sink.batches for record in records]


def test_backfill_needs_a_duration():
    with pytest.raises(ValueError, match="duration"):
        simulation_run(scenarios=[FactoryScenario(seed=1)], sink=RecordingSink(), duration_seconds=None, realtime=False)


# --- management command ----------------------------------------------------------------------------------------


def _simulate(command_line: str) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("simulate", *shlex.split(command_line), stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def test_command_backfill_prints_one_ndjson_line_per_device_second():
    command_line = (
        "--scenario factory --devices 7 --no-realtime --duration 10 --start 2024-05-06T08:00:00Z "
        "--sink stdout-ndjson --seed 42"
    )

    output, status = _simulate(command_line)
    again, _ = _simulate(command_line)

    lines = output.splitlines()
    assert len(lines) == 70
    records = [json.loads(line) for line in lines]
    assert {record["source"] for record in records} == {"demo-factory"}
    assert len({record["device"] for record in records}) == 7
    assert all(record["time"].startswith("2024-05-06T08:00:0") for record in records)
    assert output == again
    assert "seed 42" in status
    assert "70 records" in status


def test_command_all_scenarios_in_line_protocol_from_a_relative_start():
    before = datetime.now(UTC)

    output, _ = _simulate(
        "--scenario all --devices 4 --rate 50 --no-realtime --start -2h --duration 30 --sink stdout-line"
    )

    parsed = [_parse_line_protocol(line) for line in output.splitlines()]
    by_measurement: dict[str, int] = defaultdict(int)
    for measurement, _, _, _ in parsed:
        by_measurement[measurement] += 1
    assert by_measurement["demo_factory"] == 4 * 30
    assert by_measurement["demo_marketing"] > 0
    earliest = min(timestamp for *_, timestamp in parsed) / 1e9
    assert (before - timedelta(hours=2, seconds=5)).timestamp() <= earliest
    assert earliest <= (before - timedelta(hours=2) + timedelta(seconds=30)).timestamp()


def test_command_sends_batches_to_the_ingest_api(ingest_server, monkeypatch):
    monkeypatch.setenv("SIMULATE_WRITE_KEYS", "demo-factory=from-env,demo-business=biz-key")

    _simulate(
        "--scenario factory --devices 2 --no-realtime --duration 3 --start 2024-05-06T08:00Z "
        f"--sink http --url {ingest_server.base_url} --write-key demo-factory=from-option"
    )

    # A backfill combines its ticks into one batch per source (up to 5000 records).
    (request,) = ingest_server.requests
    assert request["path"] == "/api/v1/sources/demo-factory/ingest"
    assert request["headers"]["Authorization"] == "Bearer from-option"
    records = json.loads(request["body"])
    assert len(records) == 6
    assert {record["device"] for record in records} == {record["device"] for record in records[:2]}


def test_command_reports_an_unreachable_ingest_api_as_a_command_error(monkeypatch):
    monkeypatch.setattr(simulate_command, "HttpSink", partial(HttpSink, max_attempts=2, sleep=lambda seconds: None))

    with pytest.raises(CommandError, match="failed after 2 attempts"):
        _simulate(
            "--scenario business --rate 500 --no-realtime --duration 2 "
            f"--sink http --url http://127.0.0.1:{closed_port()} --write-key demo-business=k"
        )


@pytest.mark.parametrize(
    ("command_line", "message"),
    [
        ("--scenario robots", "Unknown scenario 'robots'; choose from factory, marketing, business or all"),
        ("--rate 0", "--rate must be a positive"),
        ("--devices 0", "--devices must be at least 1"),
        ("--fault-rate -1", "--fault-rate"),
        ("--duration 0", "--duration must be a positive"),
        ("--no-realtime", "give --start"),
        ("--no-realtime --start 2999-01-01T00:00:00Z", "not in the past"),
        ("--start yesterday", "ISO 8601"),
        ("--sink carrier-pigeon", "invalid choice"),
        ("--url http://127.0.0.1:8000", "only apply to --sink http"),
        ("--sink http --scenario factory", "needs a write key for demo-factory"),
        ("--sink http --write-key demo-factroy=KEY", "unknown source slug 'demo-factroy'"),
        ("--sink http --write-key demo-factory", "expected SLUG=KEY"),
        ("--sink http --url ftp://example.com --write-key demo-factory=k", "http:// or https://"),
    ],
)
def test_command_rejects_bad_options_with_a_clear_message(command_line, message, monkeypatch):
    monkeypatch.delenv("SIMULATE_WRITE_KEYS", raising=False)
    # Bound any realtime run, so a validation that fails to fire cannot hang the suite.
    bounded = "" if "--no-realtime" in command_line or "--duration" in command_line else "--duration 1 "

    with pytest.raises(CommandError, match=re.escape(message)):
        _simulate(bounded + command_line)
