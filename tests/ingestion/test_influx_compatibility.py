"""What `/write` and `/api/v2/write` store for the bodies where InfluxDB 1.x and we used to disagree (issue 14).

Each test sends what a real agent sends and checks what InfluxDB 1.6 does (see influx_corpus.toml for the
same bodies compared against InfluxDB itself) or the documented difference.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest

from apps.ingestion.connectors import message_parse
from apps.ingestion.models import DeadLetter
from tests.conftest import api_client_for
from tests.factories import DEFAULT_ORGANIZATION_SLUG, user_create
from tests.ingestion.factories import source_with_key, stored_points

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T0_NS = 1767225600 * 10**9


def _write(client, key: str, body: str, *, precision: str | None = None, v2: bool = False):
    query = (
        f"?bucket=plant&precision={precision or 'ns'}"
        if v2
        else "?db=plant" + (f"&precision={precision}" if precision else "")
    )
    path = ("/api/v2/write" if v2 else "/write") + query
    return client.post(path, data=body.encode(), content_type="text/plain", headers={"Authorization": f"Token {key}"})


def _metric_value(client, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    text = client.get("/metrics").content.decode()
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_a_multi_line_string_field_is_one_line_and_its_numbers_are_stored(client):
    """influxdb-client sends a multi-line log message as one string field with the newline in it."""
    source, key = source_with_key(slug="plant")
    body = (
        f'log,host=a message="panic: nil map\ngoroutine 1 [running]:",level=3i {T0_NS}\n'
        f"log,host=a level=6i {T0_NS + 1000}"
    )
    response = _write(client, key, body, v2=True)
    assert response.status_code == 204, response.content
    assert [(metric, value) for metric, _, _, value, _ in stored_points(source=source)] == [
        ("log.level", 3.0),
        ("log.level", 6.0),
    ]


def test_two_backslashes_in_a_tag_value_stay_two(client):
    """A Windows share (`\\\\server\\share`) keeps both backslashes, as in InfluxDB 1.x."""
    source, key = source_with_key(slug="plant")
    response = _write(client, key, f"win_disk,instance=\\\\server\\share free=12.5 {T0_NS}")
    assert response.status_code == 204, response.content
    assert [labels for _, labels, *_ in stored_points(source=source)] == [{"instance": "\\\\server\\share"}]


def test_a_backslash_before_a_newline_continues_the_line_instead_of_storing_a_bogus_metric(client):
    source, key = source_with_key(slug="plant")
    response = _write(client, key, f"m,t=a f=1,g=2\\\nx=3 {T0_NS}\nm f=5 {T0_NS}")
    assert response.status_code == 400
    assert response.json()["error"].startswith("partial write: unable to parse 'm,t=a f=1,g=2\\\nx=3")
    assert [(metric, value) for metric, _, _, value, _ in stored_points(source=source)] == [("m.f", 5.0)]


def test_crlf_lines_are_refused_as_influxdb_refuses_them_and_the_message_says_why(client):
    source, key = source_with_key(slug="plant")
    response = _write(client, key, f"m f=1 {T0_NS}\r\nm f=2 {T0_NS + 1000}\r\n")
    assert response.status_code == 400
    assert "bad timestamp (the line ends in a carriage return" in response.json()["error"]
    assert stored_points(source=source) == []
    assert DeadLetter.objects.filter(source=source, error_code="invalid_line_protocol").count() == 2


def test_times_before_1970_are_refused_naming_the_accepted_range(client):
    source, key = source_with_key(slug="plant")
    response = _write(client, key, f"m f=1 -1000000000\nm f=2 {T0_NS}")
    assert response.status_code == 400
    letter = DeadLetter.objects.get(source=source)
    assert (letter.record_index, letter.error_code) == (0, "time_out_of_range")
    assert "outside the accepted range, 1970-01-01T00:00:00Z up to 2262-01-01T00:00:00Z" in letter.error_message
    assert [value for *_, value, _ in stored_points(source=source)] == [2.0]


@pytest.mark.parametrize(("precision", "unit_us"), [("s", 10**6), ("ms", 10**3), ("h", 3600 * 10**6)])
def test_lines_without_a_timestamp_get_the_arrival_time_cut_to_the_precision(
    client, django_capture_on_commit_callbacks, precision, unit_us
):
    """InfluxDB truncates the server time to the precision; the careful path and the fast path alike."""
    source, key = source_with_key(slug="plant")
    before_us = time.time_ns() // 1000
    # The first body is read the careful way and teaches the fast path the series; the second takes the fast path.
    for value in (1, 2):
        with django_capture_on_commit_callbacks(execute=True):
            response = _write(client, key, f"m,device=d1 f={value}", precision=precision)
        assert response.status_code == 204, response.content
    after_us = time.time_ns() // 1000
    stamps = [int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 10**6) for *_, moment, _, _ in
              stored_points(source=source)]  # fmt: skip
    assert stamps
    for stamp in stamps:
        assert stamp % unit_us == 0
        assert before_us - before_us % unit_us <= stamp <= after_us


def test_connector_messages_without_a_timestamp_are_stamped_at_the_precision():
    """MQTT and Kafka line-protocol payloads follow the same rule as the HTTP endpoints."""
    before = time.time_ns()
    message = message_parse(
        payload=b"m f=1\nm f=2", topic="t", payload_format="line", precision="s", topic_label=False, handle=None
    )
    stamps = [record.time_ns for record in message.records]
    assert len(stamps) == 2
    for stamp in stamps:
        assert stamp % 10**9 == 0
        assert before - before % 10**9 <= stamp <= time.time_ns()


def test_the_reserved_key_time(client):
    """As InfluxDB 1.6: a tag `time` refuses the line, a field `time` is dropped (refused when alone)."""
    source, key = source_with_key(slug="plant")
    body = f"cpu,time=x a=1 {T0_NS}\ncpu time=1 {T0_NS}\ncpu time=1,b=2 {T0_NS}\ntime c=3 {T0_NS}"
    response = _write(client, key, body)
    assert response.status_code == 400
    assert response.json()["error"].startswith('partial write: invalid tag key: input tag "time" on measurement "cpu"')
    letters = DeadLetter.objects.filter(source=source).order_by("record_index")
    assert [(letter.record_index, letter.error_code, letter.error_field) for letter in letters] == [
        (0, "reserved_key", "time"),
        (1, "reserved_key", "time"),
    ]
    assert [(metric, labels, value) for metric, labels, _, value, _ in stored_points(source=source)] == [
        ("cpu.b", {}, 2.0),
        ("time.c", {}, 3.0),
    ]


def test_a_field_changing_type_within_a_body_refuses_the_later_lines(client):
    source, key = source_with_key(slug="plant")
    body = f"m,t=a f=1 {T0_NS}\nm,t=b f=2i {T0_NS}\nm,t=c f=3 {T0_NS}\nn,t=d f=4i {T0_NS}"
    response = _write(client, key, body)
    assert response.status_code == 400
    assert response.json()["error"] == (
        'partial write: field type conflict: input field "f" on measurement "m" is type integer, '
        "already exists as type float"
    )
    assert [(metric, labels["t"]) for metric, labels, *_ in stored_points(source=source)] == [
        ("m.f", "a"),
        ("m.f", "c"),
        ("n.f", "d"),  # another measurement has fields of its own
    ]
    assert DeadLetter.objects.get(source=source).error_code == "field_type_conflict"


def test_a_field_key_ending_in_a_space_reads_back_through_the_query_api(client):
    source, key = source_with_key(slug="plant")
    assert _write(client, key, f"m f\\ =1.5 {T0_NS}").status_code == 204
    assert [metric for metric, *_ in stored_points(source=source)] == ["m.f "]
    api = api_client_for(user_create(username="reader"))
    response = api.post(
        "/api/v1/query",
        {"source": "plant", "metric": "m.f ", "aggregation": "max", "start": "2025-12-31T23:00:00Z",
         "end": "2026-01-01T01:00:00Z", "bucket": "1h"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    assert [point[1] for series in response.json()["series"] for point in series["points"] if point[1]] == [1.5]


def test_a_line_of_strings_only_is_accepted_and_its_strings_are_counted(client, django_capture_on_commit_callbacks):
    """Telegraf's system input sends uptime_format alone on a line at every flush; InfluxDB accepts it."""
    source, key = source_with_key(slug="plant")
    ignored_before = _metric_value(
        client,
        "analytics_ingest_fields_ignored_total",
        reason="string",
        source="plant",
        organization=DEFAULT_ORGANIZATION_SLUG,
    )
    body = (
        f"system,host=h load1=0.5,n_cpus=2i {T0_NS}\nsystem,host=h uptime=12345i {T0_NS}\n"
        f'system,host=h uptime_format=" 3:25" {T0_NS}'
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = _write(client, key, body)
    assert response.status_code == 204, response.content
    assert [metric for metric, *_ in stored_points(source=source)] == ["system.load1", "system.n_cpus", "system.uptime"]
    assert not DeadLetter.objects.filter(source=source).exists()
    ignored = _metric_value(
        client,
        "analytics_ingest_fields_ignored_total",
        reason="string",
        source="plant",
        organization=DEFAULT_ORGANIZATION_SLUG,
    )
    assert ignored == ignored_before + 1


def test_points_within_one_microsecond_keep_the_last_and_are_counted(client, django_capture_on_commit_callbacks):
    source, key = source_with_key(slug="plant")
    overwritten_before = _metric_value(
        client, "analytics_ingest_points_overwritten_total", source="plant", organization=DEFAULT_ORGANIZATION_SLUG
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = _write(client, key, f"m f=1 {T0_NS + 1}\nm f=2 {T0_NS + 2}\nm f=3 {T0_NS + 1000}")
    assert response.status_code == 204, response.content
    assert [(moment, value) for _, _, moment, value, _ in stored_points(source=source)] == [
        (T0, 2.0),
        (T0.replace(microsecond=1), 3.0),
    ]
    assert (
        _metric_value(
            client, "analytics_ingest_points_overwritten_total", source="plant", organization=DEFAULT_ORGANIZATION_SLUG
        )
        == overwritten_before + 1
    )
