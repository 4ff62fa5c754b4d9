"""Fuzzing the ingest endpoints themselves: no body, header or query string makes the server answer 5xx."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ingestion.factories import source_with_key

pytestmark = pytest.mark.django_db
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

near_json = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=20)),
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    ).map(lambda value: json.dumps(value).encode()),
    st.lists(st.dictionaries(st.sampled_from(["time", "timestamp", "device", "t", "v", ""]),
                             st.one_of(st.integers(), st.floats(), st.text(max_size=12), st.booleans(), st.none()),
                             max_size=5), max_size=5).map(lambda value: json.dumps(value).encode()),
)  # fmt: skip
tokens = st.sampled_from([*list(' m,=t1.5i"\\#fu-eE\r\t\x00'), "device", "x", "1767225600000000000", "9" * 25])
near_lines = st.lists(st.lists(tokens, max_size=20).map("".join), max_size=8).map(
    lambda lines: "\n".join(lines).encode()
)
content_types = st.sampled_from(
    ["application/json", "application/x-ndjson", "text/plain", "", "application/json; charset=utf-8"]
)


def _check(response) -> None:
    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        body = response.json()
        message = body.get("detail") or body.get("message") or body.get("error") or body.get("errors")
        assert message, body


@FUZZ
@given(body=near_json, content_type=content_types, gzipped=st.booleans())
def test_json_endpoint_never_fails_with_5xx(client, body, content_type, gzipped):
    _, key = _source()
    headers = {"Authorization": f"Bearer {key}"}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    _check(client.post("/api/v1/sources/fuzz/ingest", body, content_type=content_type, headers=headers))


@FUZZ
@given(body=near_lines, precision=st.sampled_from(["ns", "us", "ms", "s", "n", "h", "x", ""]), v1=st.booleans())
def test_line_protocol_endpoints_never_fail_with_5xx(client, body, precision, v1):
    _, key = _source()
    path = f"/write?db=fuzz&precision={precision}" if v1 else f"/api/v2/write?bucket=fuzz&precision={precision}"
    _check(client.post(path, body, content_type="text/plain", headers={"Authorization": f"Token {key}"}))


_cached: dict[str, tuple] = {}


def _source():
    # Hypothesis runs every example inside one test transaction, so the source is made once per test.
    from apps.sources.models import Source

    if "fuzz" not in _cached or not Source.objects.filter(slug="fuzz").exists():
        _cached["fuzz"] = source_with_key(slug="fuzz")
    return _cached["fuzz"]
