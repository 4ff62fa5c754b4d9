"""The report editor in headless Chromium against daphne: a dashboard's panels are ticked, not typed as keys."""

from __future__ import annotations

import pytest

from apps.dashboards.services import dashboard_create
from apps.reporting.models import Report
from tests.browser.conftest import console_errors, sign_in, wait_for
from tests.factories import organization_get, user_create

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _dashboard(owner, title: str, panels: list[tuple[str, str]]):
    query = {"source": "plant", "metric": "temperature", "aggregation": "avg", "bucket": "1h"}
    return dashboard_create(organization=organization_get(), owner=owner, document={
        "schema_version": 1, "title": title, "time_range": {"start": "-6h", "end": "now"},
        "panels": [{"key": key, "title": name, "type": "timeseries", "queries": [{"ref": "A", "query": query}],
                    "grid": {"x": 0, "y": 0, "w": 6, "h": 4}} for key, name in panels],
    })  # fmt: skip


def _save_as(browser, name: str) -> Report:
    """Name the report in the open editor, send it to erin (ticked), save, and return it once stored."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.find_element(By.ID, "name").send_keys(name)
    erin = browser.find_element(By.CSS_SELECTOR, '.recipient-picks:not([disabled]) input[name="users"][value="erin"]')
    if not erin.is_selected():
        erin.send_keys(Keys.SPACE)
    browser.find_element(By.CSS_SELECTOR, "form.report-form button[type=submit]").click()
    wait_for(lambda: Report.objects.filter(name=name).exists(), message="the report was not saved")
    return Report.objects.get(name=name)


def test_the_chosen_dashboards_panels_are_ticked_and_only_they_are_saved(browser_server, browser):
    """The editor asked for panel keys, comma-separated, which a user does not know: it now lists the chosen
    dashboard's panels by title as checkboxes (the other dashboards' hidden and not sent), and none ticked means
    every panel."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    editor = user_create(username="erin", role="editor")
    floor = _dashboard(editor, "Floor", [("temp", "Temperature"), ("vib", "Vibration"), ("power", "Power")])
    other = _dashboard(editor, "Other", [("temp", "Other temperature")])
    sign_in(browser, browser_server, "erin")
    browser.get(f"{browser_server}/reports/new/")
    picks = {uid: browser.find_element(By.CSS_SELECTOR, f'.panel-picks[data-dashboard="{uid}"]')
             for uid in (floor.uid, other.uid)}  # fmt: skip
    assert not any(fieldset.is_displayed() for fieldset in picks.values())  # no dashboard chosen: queries only
    Select(browser.find_element(By.ID, "dashboard")).select_by_visible_text("Other")
    wait_for(lambda: picks[other.uid].is_displayed(), message="Other's panels did not show")
    Select(browser.find_element(By.ID, "dashboard")).select_by_visible_text("Floor")
    wait_for(lambda: picks[floor.uid].is_displayed(), message="Floor's panels did not show")
    assert not picks[other.uid].is_displayed()
    labels = [label.text for label in picks[floor.uid].find_elements(By.CSS_SELECTOR, "label")]
    assert [text.split()[0] for text in labels] == ["Temperature", "Vibration", "Power"]
    # Tick "Other temperature" while Other is hidden: it must not be sent (its fieldset is disabled).
    browser.execute_script("arguments[0].disabled = false; arguments[0].querySelector('input').checked = true; "
                           "arguments[0].disabled = true;", picks[other.uid])  # fmt: skip
    vibration = picks[floor.uid].find_element(By.CSS_SELECTOR, 'input[value="vib"]')
    vibration.send_keys(Keys.SPACE)  # by keyboard
    assert vibration.is_selected()
    report = _save_as(browser, "Vibration weekly")
    assert (report.dashboard_id, report.panel_keys) == (floor.id, ["vib"])
    browser.get(f"{browser_server}/reports/{report.pk}/edit/")
    floor_picks = browser.find_element(By.CSS_SELECTOR, f'.panel-picks[data-dashboard="{floor.uid}"]')
    ticked = [box.get_attribute("value") for box in floor_picks.find_elements(By.CSS_SELECTOR, "input") if
              box.is_selected()]  # fmt: skip
    assert ticked == ["vib"]
    assert console_errors(browser) == []


def test_the_schedule_picker_writes_the_cron_and_reads_it_back(browser_server, browser):
    """A schedule was a cron expression to type: the usual ones (every day, weekday, week or month at a time) are
    picked, and written to the cron field, which shows only for a custom schedule."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _dashboard(user_create(username="erin", role="editor"), "Floor", [("temp", "Temperature")])
    sign_in(browser, browser_server, "erin")
    browser.get(f"{browser_server}/reports/new/")
    Select(browser.find_element(By.ID, "dashboard")).select_by_visible_text("Floor")
    frequency = Select(browser.find_element(By.ID, "schedule-frequency"))
    assert frequency.first_selected_option.get_attribute("value") == ""  # a new report: on demand
    assert not browser.find_element(By.ID, "cron").is_displayed()
    frequency.select_by_value("weekly")
    Select(browser.find_element(By.ID, "schedule-weekday")).select_by_visible_text("Monday")
    browser.execute_script("const clock = document.getElementById('schedule-time'); clock.value = '07:30';"
                           "clock.dispatchEvent(new Event('change'));")  # fmt: skip
    assert not browser.find_element(By.ID, "schedule-day").is_displayed()  # a monthly field
    report = _save_as(browser, "Weekly floor")
    assert report.cron == "30 7 * * 1"

    expected = {"0 6 1 * *": ("monthly", {"schedule-day": "1", "schedule-time": "06:00"}),
                "5 18 * * 1-5": ("weekdays", {"schedule-time": "18:05"}),
                "*/15 * * * *": ("custom", {})}  # fmt: skip
    for cron, (shown, fields) in expected.items():
        Report.objects.filter(pk=report.pk).update(cron=cron)
        browser.get(f"{browser_server}/reports/{report.pk}/edit/")
        picked = Select(browser.find_element(By.ID, "schedule-frequency")).first_selected_option
        assert picked.get_attribute("value") == shown, cron
        for element_id, value in fields.items():
            assert browser.find_element(By.ID, element_id).get_attribute("value") == value, (cron, element_id)
        assert browser.find_element(By.ID, "cron").is_displayed() == (shown == "custom")
    # Custom to daily rewrites the cron field.
    Select(browser.find_element(By.ID, "schedule-frequency")).select_by_value("daily")
    assert browser.find_element(By.ID, "cron").get_attribute("value") == "0 7 * * *"
    assert console_errors(browser) == []


def test_recipients_are_ticked_from_the_chosen_organisations_members_and_teams(browser_server, browser):
    """Recipients were usernames and team slugs typed comma-separated: they are the organisation's members and
    teams to tick, the chosen organisation's only (another one's are hidden and not sent), with a filter box for a
    long list; the edit page shows the saved ones ticked."""
    from django.contrib.auth.models import Group
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    from apps.access.models import Membership, Team

    erin = user_create(username="erin", role="editor")
    _dashboard(erin, "Floor", [("temp", "Temperature")])
    other = organization_get(slug="zeta-works")
    Membership.objects.create(organization=other, user=erin, role="editor")
    for number in range(10):
        user_create(username=f"operator{number:02d}", first_name="Op", last_name=f"Number {number}")
    user_create(username="zed", organization="zeta-works")
    Team.objects.create(organization=organization_get(), name="Line 2", slug="line-2",
                        group=Group.objects.create(name="line-2-test"))  # fmt: skip
    sign_in(browser, browser_server, "erin")
    browser.get(f"{browser_server}/reports/new/")
    organization = Select(browser.find_element(By.ID, "organization"))
    organization.select_by_value(organization_get().slug)

    def picks(slug: str, kind: str):
        return browser.find_element(By.CSS_SELECTOR, f'#{kind} .recipient-picks[data-organization="{slug}"]')

    assert picks(organization_get().slug, "users").is_displayed()
    assert not picks(other.slug, "users").is_displayed()
    names = [box.get_attribute("value") for box in picks(organization_get().slug, "users").find_elements(
        By.CSS_SELECTOR, "input[type=checkbox]")]  # fmt: skip
    assert names == ["erin", *(f"operator{number:02d}" for number in range(10))]
    assert "Op Number 3" in picks(organization_get().slug, "users").text  # full names beside usernames
    # Eleven members: a filter box narrows the list as one types.
    box = picks(organization_get().slug, "users").find_element(By.CSS_SELECTOR, ".picks-filter")
    box.send_keys("number 7")
    shown = [label.text.split()[0] for label in picks(organization_get().slug, "users").find_elements(
        By.CSS_SELECTOR, ".picks label") if label.is_displayed()]  # fmt: skip
    assert shown == ["operator07"]
    picks(organization_get().slug, "users").find_element(By.CSS_SELECTOR, 'input[value="operator07"]').send_keys(
        Keys.SPACE
    )
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)  # an emptied filter shows everyone again
    assert all(label.is_displayed() for label in picks(organization_get().slug, "users").find_elements(
        By.CSS_SELECTOR, ".picks label"))  # fmt: skip
    picks(organization_get().slug, "teams").find_element(By.CSS_SELECTOR, 'input[value="line-2"]').send_keys(Keys.SPACE)
    # Tick zed in the other organisation's hidden list: it must not be sent.
    browser.execute_script("arguments[0].disabled = false; arguments[0].querySelector('input').checked = true; "
                           "arguments[0].disabled = true;", picks(other.slug, "users"))  # fmt: skip
    # Switching organisation shows its members instead.
    organization.select_by_value(other.slug)
    wait_for(lambda: picks(other.slug, "users").is_displayed(), message="the other organisation's members did not show")
    assert not picks(organization_get().slug, "users").is_displayed()
    assert "no teams yet" in picks(other.slug, "teams").text
    organization.select_by_value(organization_get().slug)
    Select(browser.find_element(By.ID, "dashboard")).select_by_visible_text("Floor")
    report = _save_as(browser, "Line report")
    assert sorted(user.username for user in report.recipient_users.all()) == ["erin", "operator07"]
    assert [team.slug for team in report.recipient_teams.all()] == ["line-2"]
    browser.get(f"{browser_server}/reports/{report.pk}/edit/")
    ticked = [box.get_attribute("value") for box in browser.find_elements(
        By.CSS_SELECTOR, ".recipient-picks input[type=checkbox]") if box.is_selected()]  # fmt: skip
    assert ticked == ["erin", "operator07", "line-2"]
    assert not browser.find_elements(By.ID, "organization")  # an existing report keeps its organisation
    assert console_errors(browser) == []


def test_queries_shown_as_tables_are_edited_as_rows_of_fields_and_kept_whole(browser_server, browser):
    """A report's queries were a JSON list to type: each is a row of fields (title, source, metric, aggregation,
    bucket, group by, filters, unit, decimals), written to the JSON the form posts; what a row does not show (other
    query options, list filters) is kept, and the JSON can still be edited."""
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.storage.factories import series_create, source_create

    erin = user_create(username="erin", role="editor")
    _dashboard(erin, "Floor", [("temp", "Temperature")])
    plant = source_create(slug="plant")
    for metric in ("temperature", "vibration"):
        series_create(source=plant, metric=metric, facility="f1")
    series_create(source=source_create(slug="office"), metric="occupancy")
    sign_in(browser, browser_server, "erin")
    browser.get(f"{browser_server}/reports/new/")
    assert not browser.find_element(By.ID, "queries").is_displayed()  # the JSON is folded away
    assert browser.find_element(By.ID, "query-empty").is_displayed()
    browser.find_element(By.ID, "query-add").click()
    row = browser.find_element(By.CSS_SELECTOR, "#query-rows .query-row")
    assert browser.switch_to.active_element == row.find_element(By.CSS_SELECTOR, '[data-key="title"]')
    typed = {"title": "Hottest per facility", "source": "plant", "metric": "temperature", "bucket": "1h",
             "group_by": "facility", "filters": "facility=f1, line!=2", "unit": "°C", "decimals": "1"}  # fmt: skip
    for key, text in typed.items():
        row.find_element(By.CSS_SELECTOR, f'[data-key="{key}"]').send_keys(text)
    Select(row.find_element(By.CSS_SELECTOR, '[data-key="aggregation"]')).select_by_value("max")
    assert not browser.find_element(By.ID, "query-empty").is_displayed()
    # The metric field suggests the chosen source's metrics (read once the source field changes).
    suggestions = row.find_element(
        By.ID, row.find_element(By.CSS_SELECTOR, '[data-key="metric"]').get_attribute("list")
    )
    wait_for(lambda: [option.get_attribute("value") for option in suggestions.find_elements(By.TAG_NAME, "option")]
             == ["temperature", "vibration"], message="the plant's metrics were not suggested")  # fmt: skip
    report = _save_as(browser, "Hot spots")
    assert report.queries == [{
        "title": "Hottest per facility", "unit": "°C", "decimals": 1,
        "query": {"source": "plant", "metric": "temperature", "aggregation": "max", "bucket": "1h",
                  "group_by": ["facility"], "filters": {"facility": "f1", "line": {"ne": "2"}}},
    }]  # fmt: skip

    # Options a row does not show survive an edit of the row.
    extra = {**report.queries[0]["query"], "fill": "previous", "filters": {"device": ["d1", "d2"], "line": "2"}}
    Report.objects.filter(pk=report.pk).update(queries=[{**report.queries[0], "query": extra}])
    browser.get(f"{browser_server}/reports/{report.pk}/edit/")
    row = browser.find_element(By.CSS_SELECTOR, "#query-rows .query-row")
    assert row.find_element(By.CSS_SELECTOR, '[data-key="filters"]').get_attribute("value") == "line=2"
    assert "Also kept from the JSON: fill, filters.device." in row.text
    title = row.find_element(By.CSS_SELECTOR, '[data-key="title"]')
    title.clear()
    title.send_keys("Hottest")
    posted = json.loads(browser.find_element(By.ID, "queries").get_attribute("value"))
    assert posted[0]["title"] == "Hottest"
    assert posted[0]["query"]["fill"] == "previous"
    assert posted[0]["query"]["filters"] == {"device": ["d1", "d2"], "line": "2"}
    # The JSON, unfolded and edited, rewrites the rows.
    browser.find_element(By.CSS_SELECTOR, "#queries-json summary").click()
    field = browser.find_element(By.ID, "queries")
    browser.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change'));",
                           field, json.dumps([{"title": "A", "query": {"metric": "power"}},
                                              {"title": "B", "query": {"metric": "flow"}}]))  # fmt: skip
    assert [element.get_attribute("value") for element in browser.find_elements(
        By.CSS_SELECTOR, '#query-rows [data-key="metric"]')] == ["power", "flow"]  # fmt: skip
    # Removing every row leaves no queries: refused while the report shows no dashboard either, then saved with one.
    for button in browser.find_elements(By.CSS_SELECTOR, ".query-remove"):
        button.click()
    assert field.get_attribute("value") == ""
    browser.find_element(By.CSS_SELECTOR, "form.report-form button[type=submit]").click()
    error = wait_for(lambda: browser.find_element(By.ID, "form-error"), message="no refusal shown")
    assert "a report shows a dashboard, some queries, or both" in error.text
    Select(browser.find_element(By.ID, "dashboard")).select_by_visible_text("Floor")
    browser.find_element(By.CSS_SELECTOR, "form.report-form button[type=submit]").click()
    wait_for(lambda: Report.objects.get(pk=report.pk).queries == [], message="the queries were not removed")
    assert Report.objects.get(pk=report.pk).dashboard.title == "Floor"
    assert console_errors(browser) == []


def test_a_query_rows_label_names_are_named_and_offered_in_group_by_and_filters(browser_server, browser):
    """Which labels can a query group by or filter on? The row names the label names of its metric's series (those
    the user may see: another organisation's names are not among them), offers them in the group-by and filters
    fields after what is typed already, then a filtered label's values, and says when the metric has no series at
    all (a typo, or no data yet)."""
    from selenium.webdriver.common.by import By

    from tests.storage.factories import series_create, source_create

    user_create(username="erin", role="editor")
    plant = source_create(slug="plant")
    series_create(source=plant, metric="temperature", facility="f1", line="l1")
    series_create(source=plant, metric="temperature", facility="f2", device="d9")
    series_create(source=plant, metric="vibration", axis="x")
    series_create(source=source_create(slug="rival", organization="other-org"), metric="temperature", zone="z1")
    sign_in(browser, browser_server, "erin")
    browser.get(f"{browser_server}/reports/new/")
    browser.find_element(By.ID, "query-add").click()
    row = browser.find_element(By.CSS_SELECTOR, "#query-rows .query-row")
    field = {key: row.find_element(By.CSS_SELECTOR, f'[data-key="{key}"]') for key in ("title", "metric", "group_by",
                                                                                         "filters")}  # fmt: skip
    hint = row.find_element(By.CSS_SELECTOR, ".query-labels")
    assert not hint.is_displayed()
    field["metric"].send_keys("temperature")
    field["title"].click()  # leaving the field is the change that asks for the names
    wait_for(lambda: hint.text == "Labels of temperature: device, facility, line.", message=f"hint: {hint.text!r}")

    def offered(key: str) -> list[str]:
        suggestions = row.find_element(By.ID, field[key].get_attribute("list"))
        return [option.get_attribute("value") for option in suggestions.find_elements(By.TAG_NAME, "option")]

    field["group_by"].click()
    assert offered("group_by") == ["device", "facility", "line"]
    field["group_by"].send_keys("facility,")
    assert offered("group_by") == ["facility, device", "facility, line"]
    field["filters"].send_keys("line=l1,")
    assert offered("filters") == ["line=l1, device=", "line=l1, facility="]
    # Once a label and an operator are typed, that label's values among the metric's series are offered.
    field["filters"].send_keys(" facility!=")
    wait_for(lambda: offered("filters") == ["line=l1, facility!=f1", "line=l1, facility!=f2"],
             message="the facility values were not offered")  # fmt: skip
    field["metric"].clear()
    field["metric"].send_keys("temprature")
    field["title"].click()
    wait_for(lambda: hint.text.startswith("No series of temprature that you may see yet"), message="no warning")
    field["group_by"].click()
    assert offered("group_by") == []
    assert console_errors(browser) == []
