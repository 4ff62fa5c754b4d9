"""The alerting pages in headless Chromium against daphne: the rule editor form (field errors, backtest preview, save),
"send test" to a real receiver, the contact point, silence, mute timing and policy forms, the history timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.alerts.alerting.services import contact_point_create
from apps.alerts.models import AlertRule
from tests.alerts.alerting.receivers import Receiver, receiver_start, receiver_stop
from tests.browser.conftest import console_errors, http_ingest, sign_in, wait_for
from tests.factories import organization_get, user_create
from tests.ingestion.factories import source_with_key

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _plant_with_a_breach(base_url: str) -> None:
    """plant/temperature of press-7 over the last 40 minutes: 50, with 95 from minute 10 to 15; press-1 and press-2
    stay at 50 (they sort before press-7)."""
    _, key = source_with_key(slug="plant")
    now = datetime.now(UTC)
    records = [
        {"time": (now - timedelta(minutes=40 - minute)).isoformat(), "device": device,
         "temperature": 95 if device == "press-7" and 10 <= minute < 15 else 50}
        for minute in range(40)
        for device in ("press-1", "press-2", "press-7")
    ]  # fmt: skip
    http_ingest(base_url, "plant", key, records)


def _type(browser, element_id: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    field = browser.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def test_the_rule_editor_form_previews_a_backtest_and_the_saved_rule_is_listed(
    browser_server, browser, storage_committed_cleanup
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    editor = user_create(username="erin", role="editor")
    hook = contact_point_create(organization=organization_get(), created_by=editor, name="floor hook", kind="webhook",
                                config={"url": "http://127.0.0.1:9/hook", "secret": "s"})  # fmt: skip
    _plant_with_a_breach(browser_server)
    sign_in(browser, browser_server, "erin")
    browser.get(f"{browser_server}/alerts/rules/new")
    assert not browser.find_elements(By.TAG_NAME, "textarea#rule-document")  # a form, not a JSON box
    _type(browser, "rule-name", "Press too hot")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#rule-source option[value=plant]"), message="no sources")
    Select(browser.find_element(By.ID, "rule-source")).select_by_value("plant")
    _type(browser, "rule-metric", "temperature")
    _type(browser, "rule-group-by", "device")
    Select(browser.find_element(By.ID, "rule-condition")).select_by_value(">")
    # Saving without a threshold: the API's error appears beside the threshold field, which gets the focus.
    browser.find_element(By.ID, "rule-save").click()
    error = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "[data-field='condition.value'] .field-error"),
                     message="no error beside the threshold")  # fmt: skip
    assert "condition.value" in error.text
    assert browser.switch_to.active_element.get_attribute("id") == "rule-value"
    _type(browser, "rule-value", "90")
    _type(browser, "rule-recovery", "85")
    _type(browser, "rule-summary", "{{ labels.device }} at {{ value }}")
    browser.find_element(By.CSS_SELECTOR, f"input[name=contact_points][value='{hook.id}']").click()
    browser.find_element(By.ID, "backtest-run").click()
    summary = wait_for(lambda: browser.find_element(By.ID, "backtest-summary").get_attribute("data-firings") and
                       browser.find_element(By.ID, "backtest-summary").text, message="no backtest summary")  # fmt: skip
    assert "fired 1 time(s) and sent 2 notification(s)" in summary, summary
    assert browser.find_elements(By.CSS_SELECTOR, "#backtest-charts .js-plotly-plot")  # drawn by plotly
    # The label set that fires comes first (with many calm ones it was past the charts drawn, never shown).
    captions = [caption.text for caption in browser.find_elements(By.CSS_SELECTOR, "#backtest-charts figcaption")]
    assert captions[0].startswith("device=press-7: fires 1 time(s)"), captions
    assert browser.find_elements(By.CSS_SELECTOR, "#backtest-charts .js-plotly-plot .shapelayer path")  # firing band
    browser.find_element(By.ID, "rule-save").click()
    wait_for(lambda: "/alerts/rules/" in browser.current_url and "new" not in browser.current_url,
             message="save did not open the rule")  # fmt: skip
    rule = AlertRule.objects.get()
    assert (rule.name, rule.group_by, rule.condition) == (
        "Press too hot",
        ["device"],
        {"type": "threshold", "op": ">", "value": 90, "recovery": 85},
    )
    assert rule.queries == [{"ref": "A", "query": {"source": "plant", "metric": "temperature"}}]
    assert [point.id for point in rule.contact_points.all()] == [hook.id]
    browser.get(f"{browser_server}/alerts/")
    assert "Press too hot" in browser.find_element(By.TAG_NAME, "table").text
    # "New rule" is drawn as the primary button it is on every list page (it was an underlined link here: the
    # button style lived in the dashboards' and reports' stylesheets only).
    new_rule = browser.find_element(By.LINK_TEXT, "New rule")
    probe = browser.execute_script(
        "const probe = document.createElement('span'); probe.style.color = 'var(--accent)';"
        "document.body.append(probe); return probe;"
    )
    assert new_rule.value_of_css_property("background-color") == probe.value_of_css_property("color")
    assert new_rule.value_of_css_property("text-decoration-line") == "none"
    # The one refused save above is the only failed request.
    assert [message for message in console_errors(browser) if "alert-rules/ - " not in message] == []


def test_editing_a_rule_changes_what_the_form_shows_and_keeps_the_rest(browser_server, browser):
    from selenium.webdriver.common.by import By

    from apps.alerts.alerting.services import alert_rule_create

    editor = user_create(username="erin", role="editor")
    body = {
        "name": "OEE low", "expression": "A / B * 100", "condition": {"type": "outside", "min": 60, "max": 100},
        "queries": [{"ref": "A", "query": {"metric": "good", "filters": {"line": ["l1", "l2"]}}},
                    {"ref": "B", "query": {"metric": "total"}}],
        "group_by": ["line"], "reduction": "sum", "window": "15m", "group_interval": "2m",
        "annotations": {"summary": "OEE {{ value }}", "dashboard_uid": "floor"},
    }  # fmt: skip
    rule = alert_rule_create(organization=organization_get(), owner=editor, data=body)
    sign_in(browser, browser_server, "erin")
    browser.get(f"{browser_server}/alerts/rules/{rule.id}/edit")
    assert browser.find_element(By.ID, "rule-filters").get_attribute("value") == "line=l1|l2"
    assert browser.find_element(By.ID, "rule-window").get_attribute("value") == "15m"
    assert browser.find_element(By.ID, "rule-min").is_displayed()
    assert not browser.find_element(By.ID, "rule-value").is_displayed()
    # Query B is a row of its own (it was kept out of the form), with the expression that combines them.
    assert browser.find_element(By.ID, "rule-metric-B").get_attribute("value") == "total"
    assert browser.find_element(By.ID, "rule-expression").get_attribute("value") == "A / B * 100"
    _type(browser, "rule-min", "65")
    _type(browser, "rule-recovery-min", "70")
    browser.find_element(By.ID, "rule-save").click()
    wait_for(lambda: browser.current_url.endswith(f"/alerts/rules/{rule.id}"), message="save did not open the rule")
    rule.refresh_from_db()
    assert rule.condition == {"type": "outside", "min": 65, "max": 100, "recovery_min": 70}
    assert rule.queries == body["queries"]
    assert (rule.expression, rule.reduction, rule.window_seconds, rule.group_interval_seconds) == (
        "A / B * 100",
        "sum",
        900,
        120,
    )
    assert rule.annotations == body["annotations"]

    # A third query, added by keyboard: without an expression that uses it the save is refused beside the field.
    browser.get(f"{browser_server}/alerts/rules/{rule.id}/edit")
    wait_for(lambda: browser.find_element(By.ID, "rule-metric-B").get_attribute("value") == "total", message="B")
    browser.find_element(By.ID, "rule-add-query").click()
    assert browser.switch_to.active_element.get_attribute("id") == "rule-metric-C"
    _type(browser, "rule-metric-C", "scrap")
    _type(browser, "rule-filters-C", "line=l1")
    browser.find_element(By.ID, "rule-expression").clear()
    browser.find_element(By.ID, "rule-save").click()
    error = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "[data-field~=expression] .field-error"),
                     message="no error beside the expression")  # fmt: skip
    assert "expression" in error.text
    _type(browser, "rule-expression", "A / (B + C) * 100")
    browser.find_element(By.ID, "rule-save").click()
    wait_for(lambda: browser.current_url.endswith(f"/alerts/rules/{rule.id}"), message="the second save failed")
    rule.refresh_from_db()
    assert rule.queries == [*body["queries"], {"ref": "C", "query": {"metric": "scrap", "filters": {"line": "l1"}}}]
    assert rule.expression == "A / (B + C) * 100"

    # Removing B and C leaves a single query and no expression.
    browser.get(f"{browser_server}/alerts/rules/{rule.id}/edit")
    for ref in ("C", "B"):
        wait_for(lambda ref=ref: browser.find_element(By.ID, f"rule-metric-{ref}"), message=f"no row {ref}")
        browser.find_element(By.XPATH, f"//button[text()='Remove query {ref}']").click()
    assert not browser.find_element(By.ID, "rule-expression").is_displayed()
    browser.find_element(By.ID, "rule-save").click()
    wait_for(lambda: browser.current_url.endswith(f"/alerts/rules/{rule.id}"), message="the third save failed")
    rule.refresh_from_db()
    assert (rule.queries, rule.expression) == ([body["queries"][0]], "")
    # The refused save's 400 is logged by the browser; nothing else.
    assert [message for message in console_errors(browser) if "alert-rules/" not in message] == []


def test_send_test_reaches_the_receiver(browser_server, browser):
    from selenium.webdriver.common.by import By

    editor = user_create(username="erin", role="editor")
    receiver = receiver_start(Receiver())
    try:
        contact_point_create(organization=organization_get(), created_by=editor, name="floor hook", kind="webhook",
                             config={"url": receiver.url, "secret": "s"})  # fmt: skip
        sign_in(browser, browser_server, "erin")
        browser.get(f"{browser_server}/alerts/contact-points/")
        browser.find_element(By.CSS_SELECTOR, "button[data-send-test]").click()
        wait_for(lambda: browser.find_element(By.ID, "alerts-status").text == "Test sent.", message="no test sent")
        assert receiver.requests[0].json()["alerts"][0]["labels"]["alertname"] == "TestNotification"
    finally:
        receiver_stop(receiver)


def test_contact_point_silence_and_policy_forms_create_and_edit(browser_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from apps.alerts.models import ContactPoint, NotificationPolicy, Silence

    user_create(username="erin", role="editor")
    sign_in(browser, browser_server, "erin")
    browser.get(f"{browser_server}/alerts/contact-points/")
    Select(browser.find_element(By.ID, "cp-kind")).select_by_value("cmms")
    assert not browser.find_element(By.ID, "cp-asset-label").find_element(By.XPATH, "..").get_attribute("hidden")
    _type(browser, "cp-name", "maintenance")
    _type(browser, "cp-url", "ftp://cmms.example.com")
    browser.find_element(By.ID, "cp-save").click()
    error = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "[data-field~='config.url'] .field-error"),
                     message="no error beside the URL")  # fmt: skip
    assert "config.url" in error.text
    _type(browser, "cp-url", "http://127.0.0.1:9/cmms")
    _type(browser, "cp-asset-label", "device")
    browser.find_element(By.ID, "cp-save").click()
    wait_for(lambda: ContactPoint.objects.filter(name="maintenance").exists(), message="no contact point created")
    point = ContactPoint.objects.get()
    assert (point.kind, point.config["asset_label"]) == ("cmms", "device")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f"[data-edit-contact-point='{point.id}']"), message="row")
    browser.find_element(By.CSS_SELECTOR, f"[data-edit-contact-point='{point.id}']").click()
    _type(browser, "cp-name", "work orders")
    browser.find_element(By.ID, "cp-save").click()
    wait_for(lambda: ContactPoint.objects.get().name == "work orders", message="the edit was not saved")
    wait_for(lambda: "work orders" in browser.find_element(By.TAG_NAME, "table").text, message="no reload after edit")

    browser.get(f"{browser_server}/alerts/silences/")
    _type(browser, "silence-matchers", "device=press-7\nseverity!=info")
    Select(browser.find_element(By.ID, "silence-duration")).select_by_value("2")
    _type(browser, "silence-comment", "planned maintenance")
    browser.find_element(By.CSS_SELECTOR, "#silence-form [type=submit]").click()
    wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "[data-expire]"), message="the page did not list the silence"
    )
    silence = Silence.objects.get()
    assert silence.matchers == [{"label": "device", "op": "=", "value": "press-7"},
                                {"label": "severity", "op": "!=", "value": "info"}]  # fmt: skip
    assert 7100 < (silence.ends_at - silence.starts_at).total_seconds() < 7300

    browser.get(f"{browser_server}/alerts/policies/")
    _type(browser, "policy-matchers", "severity=critical")
    Select(browser.find_element(By.ID, "policy-contact-point")).select_by_value(str(point.id))
    _type(browser, "policy-group-wait", "30s")
    browser.find_element(By.CSS_SELECTOR, "#policy-form [type=submit]").click()
    wait_for(lambda: NotificationPolicy.objects.exists(), message="no policy created")
    policy = NotificationPolicy.objects.get()
    assert (policy.contact_point_id, policy.group_wait_seconds) == (point.id, 30)
    assert policy.matchers == [{"label": "severity", "op": "=", "value": "critical"}]
    assert [message for message in console_errors(browser) if "contact-points/ - " not in message] == []


def test_the_mute_timing_form_creates_edits_with_two_intervals_and_shows_errors_beside_them(browser_server, browser):
    """Mute timings had no page: a weekend timing is made by ticking days, a refused time range is shown beside the
    interval that holds it, a second interval is added and saved, and the list says when it mutes."""
    from selenium.webdriver.common.by import By

    from apps.alerts.models import MuteTiming

    user_create(username="erin", role="editor")
    sign_in(browser, browser_server, "erin")
    browser.get(f"{browser_server}/alerts/mute-timings/")
    assert "No mute timings yet" in browser.find_element(By.TAG_NAME, "main").text
    _type(browser, "mute-name", "Weekends")
    for day in ("saturday", "sunday"):
        browser.find_element(By.CSS_SELECTOR, f"#mute-intervals input[value={day}]").click()
    _type(browser, "mute-timezone-0", "Europe/Berlin")
    browser.find_element(By.CSS_SELECTOR, "#mute-form [type=submit]").click()
    wait_for(lambda: MuteTiming.objects.filter(name="Weekends").exists(), message="no mute timing created")
    timing = MuteTiming.objects.get()
    assert timing.intervals == [{"weekdays": ["saturday", "sunday"], "times": [{"start": "00:00", "end": "24:00"}],
                                 "timezone": "Europe/Berlin"}]  # fmt: skip
    row = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, f"[data-edit-timing='{timing.id}']"), message="row")
    assert "Sat, Sun, all day (Europe/Berlin)" in browser.find_element(By.TAG_NAME, "table").text

    row.click()
    browser.find_element(By.ID, "mute-add-interval").click()
    browser.find_element(By.CSS_SELECTOR, "#mute-intervals .mute-interval:nth-child(2) input[value=wednesday]").click()
    _type(browser, "mute-times-1", "23:00-22:00")
    _type(browser, "mute-timezone-1", "UTC")
    browser.find_element(By.CSS_SELECTOR, "#mute-form [type=submit]").click()
    error = wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, "[data-field='intervals[1].times'] .field-error"),
        message="no error beside the second interval's times",
    )
    assert "must be after start" in error.text
    assert browser.switch_to.active_element.get_attribute("id") == "mute-times-1"
    _type(browser, "mute-times-1", "02:00-04:00")
    browser.find_element(By.CSS_SELECTOR, "#mute-form [type=submit]").click()
    wait_for(lambda: len(MuteTiming.objects.get().intervals) == 2, message="the second interval was not saved")
    assert MuteTiming.objects.get().intervals[1] == {
        "weekdays": ["wednesday"], "times": [{"start": "02:00", "end": "04:00"}], "timezone": "UTC",
    }  # fmt: skip
    wait_for(lambda: "Wed, 02:00-04:00 (UTC)" in browser.find_element(By.TAG_NAME, "table").text, message="list")
    # The refused save's 400 is logged by the browser; nothing else.
    assert [message for message in console_errors(browser) if "mute-timings/" not in message] == []


def test_the_alert_list_panel_shows_firing_instances_of_readable_rules_live(
    browser_server, browser, storage_committed_cleanup
):
    from selenium.webdriver.common.by import By

    from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate
    from apps.alerts.alerting.services import alert_rule_create
    from apps.alerts.models import AlertInstance
    from apps.dashboards.services import dashboard_create

    editor = user_create(username="erin", role="editor")
    user_create(username="vera", role="viewer")
    stranger = user_create(username="olga", role="editor", organization="other-org")
    _, key = source_with_key(slug="plant")
    query = {"source": "plant", "metric": "temperature", "aggregation": "last", "group_by": ["device"]}
    body = {"name": "Press too hot", "condition": {"type": "threshold", "op": ">", "value": 90}, "query": query}
    rule = alert_rule_create(organization=organization_get(), owner=editor, data=body)
    hidden = alert_rule_create(organization=organization_get(slug="other-org"), owner=stranger,
                               data={**body, "name": "Other organisation's rule"})  # fmt: skip
    AlertInstance.objects.create(rule=hidden, labels={"device": "secret-press"}, fingerprint="x", state="firing")
    stopped = alert_rule_create(organization=organization_get(), owner=editor,
                                data={**body, "name": "Line stopped", "query": {"metric": "speed"}})  # fmt: skip
    AlertInstance.objects.create(rule=stopped, labels={"line": "l2"}, fingerprint="l2", state="pending")
    http_ingest(browser_server, "plant", key, [{"device": "press-7", "temperature": 95}])
    alert_rule_evaluate(rule_id=rule.id)
    assert AlertInstance.objects.get(rule=rule).state == "firing"
    panel = {"key": "alerts", "title": "Alerts", "type": "alertlist", "grid": {"x": 0, "y": 0, "w": 6, "h": 6}}
    document = {"title": "Floor", "time_range": {"start": "-1h", "end": "now"}, "refresh": "live", "panels": [panel]}
    dashboard = dashboard_create(organization=organization_get(), owner=editor, document=document)

    sign_in(browser, browser_server, "vera")
    browser.get(f"{browser_server}/dashboards/{dashboard.uid}")
    rows = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".alert-list-item"), message="no alert listed")
    assert [row.get_attribute("class").split("state-")[1] for row in rows] == ["firing", "pending"]  # urgent first
    expected = ("Press too hot", "device=press-7", "firing")
    assert tuple(text for text in expected if text in rows[0].text) == expected
    assert "secret-press" not in browser.find_element(By.CSS_SELECTOR, ".alert-list").text
    # The viewer filters by state with the chips: firing only.
    browser.find_element(By.CSS_SELECTOR, ".alert-list-filter button[data-state=firing]").click()
    shown = browser.find_elements(By.CSS_SELECTOR, ".alert-list-item .alert-list-rule")
    assert [rule_link.text for rule_link in shown] == ["Press too hot"]

    # A second press breaches: the live panel lists it without a reload, keeping the viewer's filter.
    http_ingest(browser_server, "plant", key, [{"device": "press-9", "temperature": 97}])
    alert_rule_evaluate(rule_id=rule.id)
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".alert-list-item.state-firing")) == 2, timeout=15,
             message="the second firing instance did not appear live")  # fmt: skip
    assert not browser.find_elements(By.CSS_SELECTOR, ".alert-list-item.state-pending")
    assert console_errors(browser) == []

    # The rule's page draws the state history as a timeline.
    browser.get(f"{browser_server}/alerts/rules/{rule.id}")
    wait_for(lambda: browser.find_element(By.ID, "history-timeline").get_attribute("data-drawn") == "1",
             message="no history timeline")  # fmt: skip
    bars = browser.find_elements(By.CSS_SELECTOR, "#history-timeline .barlayer .point")
    assert len(bars) == 2  # one "firing" bar per instance
    assert console_errors(browser) == []


def test_an_editor_adds_an_alert_list_from_the_panel_palette_and_saves_it(browser_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from apps.alerts.alerting.services import alert_rule_create
    from apps.alerts.models import AlertInstance
    from apps.dashboards.models import Dashboard
    from apps.dashboards.services import dashboard_create

    editor = user_create(username="erin", role="editor")
    body = {"name": "Line stopped", "condition": {"type": "threshold", "op": "<", "value": 1},
            "query": {"metric": "speed", "group_by": ["line"]}}  # fmt: skip
    rule = alert_rule_create(organization=organization_get(), owner=editor, data=body)
    AlertInstance.objects.create(rule=rule, labels={"line": "l2"}, fingerprint="l2", state="pending")
    document = {"title": "Floor", "time_range": {"start": "-1h", "end": "now"}, "refresh": "off", "panels": []}
    dashboard = dashboard_create(organization=organization_get(), owner=editor, document=document)
    sign_in(browser, browser_server, "erin")
    browser.get(f"{browser_server}/dashboards/{dashboard.uid}/?edit=1")
    item = browser.find_element(By.CSS_SELECTOR, ".palette-item[data-type=alertlist]")
    wait_for(item.is_displayed, message="the panel palette did not open")
    assert item.text == "Alert list"
    item.send_keys(Keys.ENTER)
    dialog = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#panel-editor[open]"), message="editor open")
    assert not dialog.find_element(By.CSS_SELECTOR, ".editor-query-section").is_displayed()  # no queries to pick
    boxes = {box.get_attribute("value"): box for box in dialog.find_elements(By.NAME, "alert_states")}
    assert [state for state, box in boxes.items() if box.is_selected()] == [
        "firing", "pending", "recovering", "nodata", "error"
    ]  # fmt: skip
    boxes["firing"].click()  # pending, recovering, no data and error only
    wait_for(lambda: "Line stopped" in dialog.find_element(By.CSS_SELECTOR, ".editor-preview").text,
             message="the preview did not list the pending alert")  # fmt: skip
    dialog.find_element(By.CSS_SELECTOR, ".editor-apply").click()
    browser.find_element(By.ID, "save").click()
    wait_for(lambda: Dashboard.objects.get().version == 2, message="the dashboard was not saved")
    panel = Dashboard.objects.get().panels.get()
    assert (panel.type, panel.queries) == ("alertlist", [])
    assert panel.options["alert_states"] == ["pending", "recovering", "nodata", "error"]
    # Export as CSV from the panel menu: the listed alerts, one row each (the download is caught in the page).
    browser.execute_script(
        "window.exported = []; URL.createObjectURL = (blob) => { window.exported.push(blob); return 'blob:x'; };"
        "HTMLAnchorElement.prototype.click = function () { window.exportedName = this.download; };"
        f"document.querySelector('.panel[data-key=\"{panel.key}\"] [data-action=csv]').click();"
    )
    csv = browser.execute_async_script("window.exported[0].text().then(arguments[0]);")
    lines = csv.strip().splitlines()
    assert lines[0] == "state,rule,labels,since,value"
    assert lines[1].startswith("pending,Line stopped,line=l2,")
    assert browser.execute_script("return window.exportedName;") == "Alert-list.csv"
    assert console_errors(browser) == []
