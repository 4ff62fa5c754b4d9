"""The backtest preview: a rule body replayed over the past through the query engine and the live state machine."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db

BODY = {
    "name": "Hot press",
    "query": {"source": "plant", "metric": "temperature", "aggregation": "max", "group_by": ["device"]},
    "condition": {"type": "threshold", "op": ">", "value": 90},
    "interval": "1m",
}


@pytest.mark.parametrize(("extra", "firings", "notifications"), [({}, 2, 4), ({"for": "3m"}, 1, 2)])
def test_a_backtest_shows_where_the_rule_would_have_fired(editor, factory, extra, firings, notifications):
    for minute in range(25):
        value = 95 if 5 <= minute < 10 else 96 if minute == 15 else 50
        factory.write(minute * 60 + 1, value)
    response = api_client_for(editor).post("/api/v1/alert-rules/backtest?start=-1h", {**BODY, **extra}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["step"] == "60s"
    assert (body["firings"], body["notifications"]) == (firings, notifications)
    group = body["groups"][0]
    assert group["labels"] == {"device": "press-7"}
    assert group["transitions"][0]["to"] in ("firing", "pending")
    assert {state for _, _, state in group["timeline"]} >= {"normal", "firing"}


def test_a_backtest_refuses_a_bad_rule_or_range(editor, viewer):
    client = api_client_for(editor)
    bad = client.post("/api/v1/alert-rules/backtest", {**BODY, "condition": {"type": "magic"}}, format="json")
    assert (bad.status_code, bad.json()["field"]) == (400, "condition.type")
    too_long = client.post("/api/v1/alert-rules/backtest?start=-30d", BODY, format="json")
    assert too_long.status_code == 422
    assert api_client_for(viewer).post("/api/v1/alert-rules/backtest", BODY, format="json").status_code == 403


def test_a_backtest_reads_under_the_requesting_users_data_policies(editor, factory):
    """erin may read press-7 only, ed every device: the same rule body backtests to what each may read."""
    from apps.access.models import DataPolicy
    from apps.access.services import data_policy_create
    from tests.factories import organization_get, user_create

    user_create(username="ed", role="editor")
    DataPolicy.objects.filter(organization=organization_get()).delete()  # deny by default
    data_policy_create(organization=organization_get(), name="press 7", users=["erin"], labels={"device": ["press-7"]})
    data_policy_create(organization=organization_get(), name="all for ed", users=["ed"])
    for minute in range(10):
        factory.write(minute * 60 + 1, 95, device="press-7")
        factory.write(minute * 60 + 1, 97, device="press-8")

    def devices(username: str) -> list[str]:
        client = api_client_for(get_user_model().objects.get(username=username))
        answer = client.post("/api/v1/alert-rules/backtest?start=-1h", BODY, format="json").json()
        return sorted(group["labels"]["device"] for group in answer["groups"])

    assert devices("ed") == ["press-7", "press-8"]
    assert devices("erin") == ["press-7"]


def test_a_backtest_goes_to_no_data_after_no_data_for_as_live_evaluation_does(editor, factory):
    """`no data for` was ignored by the backtest (a gap kept the state): a step without a value once it has passed
    since the last one (or the range's start) is NoData, which notifies, and data brings the rule back; an ungrouped
    rule over a metric with no series at all is one group that goes to NoData."""
    from datetime import datetime, timedelta

    for minute in range(10):
        factory.write(minute * 60 + 1, 50)
    body = {**BODY, "query": {**BODY["query"], "group_by": []}, "no_data_for": "5m"}
    response = api_client_for(editor).post("/api/v1/alert-rules/backtest?start=-1h", body, format="json")
    assert response.status_code == 200, response.content
    answer = response.json()
    (group,) = answer["groups"]
    assert group["labels"] == {}
    assert [change["to"] for change in group["transitions"]] == ["nodata", "normal", "nodata"]
    start = datetime.fromisoformat(answer["start"])
    at = [datetime.fromisoformat(change["at"]) for change in group["transitions"]]
    assert timedelta(minutes=5) <= at[0] - start < timedelta(minutes=6)  # nothing from the range's start
    last_value = max(datetime.fromisoformat(moment) for moment, value, _ in group["timeline"] if value is not None)
    assert at[2] - last_value == timedelta(minutes=5)
    assert answer["notifications"] == 3  # into NoData, out of it, into it again

    missing = {**body, "query": {**body["query"], "metric": "pressure"}}
    answer = api_client_for(editor).post("/api/v1/alert-rules/backtest?start=-1h", missing, format="json").json()
    assert [[change["to"] for change in group["transitions"]] for group in answer["groups"]] == [["nodata"]]
    without = api_client_for(editor).post(
        "/api/v1/alert-rules/backtest?start=-1h", {**missing, "no_data_for": None}, format="json"
    )
    assert without.json()["groups"] == []  # without `no data for`, no data is no alert
