// The alert list panel: alert instances (state, rule, labels, since) of the rules the viewer may read, read from
// GET /api/v1/alerts/ (which answers only the viewer's organisations' rules), filtered by options.alert_states.

import { get } from "./api.js";

export const ALERT_STATES = [["firing", "Firing"], ["pending", "Pending"], ["recovering", "Recovering"], ["nodata", "No data"], ["error", "Error"], ["normal", "Normal"]];
export const DEFAULT_ALERT_STATES = ["firing", "pending", "recovering", "nodata", "error"];

export function alertListStates(panel) {
  const states = panel.options?.alert_states;
  return states?.length ? states : DEFAULT_ALERT_STATES;
}

// The instances the panel shows, most urgent first, then the longest-standing: the API's order
// (apps/alerts/alerting/selectors.py STATE_URGENCY), which its `limit` pages.
export async function fetchAlertList(panel, { signal } = {}) {
  const limit = panel.options?.alert_limit ?? 50;
  const data = await get(`/api/v1/alerts/?state=${encodeURIComponent(alertListStates(panel).join(","))}&limit=${limit}`, { signal });
  const items = Array.isArray(data) ? data : (data?.results ?? []);
  return { items, total: Array.isArray(data) ? data.length : (data?.count ?? items.length) };
}

function since(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

function cell(tag, text, className) {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}

// Chips with the count per state; pressing one shows only that state (the viewer's filter, kept across refreshes).
function stateChips(element, panel, alerts) {
  const counts = new Map();
  for (const item of alerts.items) counts.set(item.state, (counts.get(item.state) ?? 0) + 1);
  const bar = document.createElement("div");
  bar.className = "alert-list-filter";
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", "Show only alerts in a state");
  for (const [state, label] of ALERT_STATES) {
    if (!counts.has(state)) continue;
    const chip = cell("button", `${label} ${counts.get(state)}`, `badge state-${state}`);
    chip.type = "button";
    chip.dataset.state = state;
    chip.setAttribute("aria-pressed", String(element._alertFilter === state));
    chip.addEventListener("click", () => {
      element._alertFilter = element._alertFilter === state ? null : state;
      renderAlertList(element, panel, alerts);
    });
    bar.append(chip);
  }
  return bar;
}

export function renderAlertList(element, panel, alerts) {
  if (!alerts) {
    element.replaceChildren(cell("p", "Loading alerts…", "panel-message empty"));
    return;
  }
  if (!alerts.items.length) {
    element.replaceChildren(cell("p", `No alerts ${alertListStates(panel).join(", ")}.`, "panel-message empty"));
    return;
  }
  if (!alerts.items.some((item) => item.state === element._alertFilter)) element._alertFilter = null;
  const list = document.createElement("ul");
  list.className = "alert-list";
  for (const item of alerts.items) {
    if (element._alertFilter && item.state !== element._alertFilter) continue;
    const row = document.createElement("li");
    row.className = `alert-list-item state-${item.state}`;
    row.dataset.instance = item.id;
    const badge = cell("span", item.state, `badge state-${item.state}`);
    const link = cell("a", item.rule_name, "alert-list-rule");
    link.href = `/alerts/rules/${item.rule}?instance=${item.id}`;
    const labels = cell("span", Object.entries(item.labels ?? {}).map(([key, value]) => `${key}=${value}`).join(", "), "alert-list-labels");
    const age = cell("time", since(item.state_since), "alert-list-since");
    age.dateTime = item.state_since;
    age.title = new Date(item.state_since).toLocaleString();
    row.append(badge, link, labels, age);
    list.append(row);
  }
  const nodes = [stateChips(element, panel, alerts), list];
  if (alerts.total > alerts.items.length) nodes.push(cell("p", `${alerts.items.length} of ${alerts.total} shown`, "help alert-list-more"));
  const wrapper = document.createElement("div");
  wrapper.className = "alert-list-panel";
  wrapper.append(...nodes);
  element.replaceChildren(wrapper);
}
