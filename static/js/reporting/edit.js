// The report editor: only the chosen dashboard's panel checkboxes, and the chosen organisation's recipients, show
// and are sent (a disabled fieldset's are not). A new report picks its organisation; an existing one has one list.
function showPicks(selector, attribute, value) {
  for (const picks of document.querySelectorAll(selector)) {
    const chosen = picks.dataset[attribute] === value;
    picks.hidden = !chosen;
    picks.disabled = !chosen;
  }
}

for (const [id, selector, attribute] of [["dashboard", ".panel-picks", "dashboard"], ["organization", ".recipient-picks", "organization"]]) {
  const choice = document.getElementById(id);
  if (!choice) continue;
  choice.addEventListener("change", () => showPicks(selector, attribute, choice.value));
  showPicks(selector, attribute, choice.value);
}

// A long list of recipients gets a filter box; ticked ones stay in sight.
for (const filter of document.querySelectorAll(".recipient-picks .picks-filter")) {
  filter.hidden = false;
  filter.addEventListener("input", () => {
    const text = filter.value.trim().toLowerCase();
    for (const label of filter.closest("fieldset").querySelectorAll(".picks label")) {
      label.hidden = text !== "" && !label.textContent.toLowerCase().includes(text) && !label.querySelector("input").checked;
    }
  });
}

// The schedule picker: the usual schedules (every day, weekday, week or month at a time) written to the cron field,
// which shows only for a custom schedule. A cron the picker cannot say opens as custom, untouched.
const cron = document.getElementById("cron");
const picker = document.getElementById("schedule-picker");
const frequency = document.getElementById("schedule-frequency");
const weekday = document.getElementById("schedule-weekday");
const monthDay = document.getElementById("schedule-day");
const clock = document.getElementById("schedule-time");
const cronField = document.getElementById("cron-field");

const pad = (number) => String(number).padStart(2, "0");

// "M H * * *" and the like; null for any other cron.
function scheduleOf(text) {
  const value = text.trim();
  if (!value) return { frequency: "" };
  const match = /^(\d{1,2}) (\d{1,2}) (\*|\d{1,2}) \* (\*|1-5|[0-7])$/.exec(value);
  if (!match) return null;
  const [, minute, hour, day, week] = match;
  if (Number(minute) > 59 || Number(hour) > 23) return null;
  const time = `${pad(hour)}:${pad(minute)}`;
  if (day === "*" && week === "*") return { frequency: "daily", time };
  if (day === "*" && week === "1-5") return { frequency: "weekdays", time };
  if (day === "*") return { frequency: "weekly", time, weekday: String(Number(week) % 7) };
  if (week === "*" && Number(day) >= 1 && Number(day) <= 31) return { frequency: "monthly", time, day };
  return null;
}

function cronOf() {
  const [hour, minute] = (clock.value || "07:00").split(":").map(Number);
  const at = `${minute} ${hour}`;
  switch (frequency.value) {
    case "daily": return `${at} * * *`;
    case "weekdays": return `${at} * * 1-5`;
    case "weekly": return `${at} * * ${weekday.value}`;
    case "monthly": return `${at} ${Math.min(Math.max(Number(monthDay.value) || 1, 1), 31)} * *`;
    default: return "";
  }
}

function showParts() {
  for (const part of picker.querySelectorAll("[data-when]")) {
    part.hidden = !part.dataset.when.split(" ").includes(frequency.value);
  }
  cronField.hidden = frequency.value !== "custom";
}

if (cron && picker) {
  const schedule = scheduleOf(cron.value);
  // A refused cron stays in view, as typed, with its error.
  const refused = cron.getAttribute("aria-invalid") === "true";
  if (schedule === null || refused) {
    frequency.value = "custom";
  } else {
    frequency.value = schedule.frequency;
    if (schedule.time) clock.value = schedule.time;
    if (schedule.weekday) weekday.value = schedule.weekday;
    if (schedule.day) monthDay.value = schedule.day;
  }
  picker.hidden = false;
  showParts();
  for (const input of [frequency, weekday, monthDay, clock]) {
    input.addEventListener("change", () => {
      if (frequency.value !== "custom") cron.value = cronOf();
      showParts();
    });
  }
}

// Queries shown as tables: a row of fields per query instead of JSON to type. The JSON field stays the form's value
// (what is posted) and can still be edited under "Queries as JSON": the rows write it as they change, and read it
// when it changes. Fields a row does not show (other query options, filters it cannot write as text) are kept.
const queriesField = document.getElementById("queries");
const queryEditor = document.getElementById("query-editor");
const queryRows = document.getElementById("query-rows");
const queryTemplate = document.getElementById("query-row-template");
const queryEmpty = document.getElementById("query-empty");
const queriesJson = document.getElementById("queries-json");
const SHOWN = ["source", "metric", "aggregation", "bucket", "group_by", "filters"];

// {"facility": "f1", "line": {"ne": "2"}, "device": {"regex": "^p"}} as "facility=f1, line!=2, device=~^p"; the
// conditions text cannot say (lists, not_in) are returned apart, to be kept.
function filtersText(filters) {
  const parts = [];
  const kept = {};
  for (const [label, condition] of Object.entries(filters ?? {})) {
    const operator = condition && typeof condition === "object" && !Array.isArray(condition) ? condition : {};
    if (typeof condition === "string" || typeof condition === "number") parts.push(`${label}=${condition}`);
    else if (typeof operator.ne === "string") parts.push(`${label}!=${operator.ne}`);
    else if (typeof operator.regex === "string") parts.push(`${label}=~${operator.regex}`);
    else kept[label] = condition;
  }
  return { text: parts.join(", "), kept };
}

function filtersParse(text, kept) {
  const filters = { ...kept };
  for (const part of text.split(",")) {
    const match = /^\s*([^=!~\s]+)\s*(!=|=~|=)\s*(.*?)\s*$/.exec(part);
    if (!match) continue;
    const [, label, operator, value] = match;
    filters[label] = operator === "=" ? value : operator === "!=" ? { ne: value } : { regex: value };
  }
  return filters;
}

let queryRowCount = 0;

function options(values) {
  return values.map((value) => Object.assign(document.createElement("option"), { value }));
}

// The row's metric, and its source when one is given, as query parameters (with `extra`).
function seriesParams(row, extra) {
  const params = new URLSearchParams({ ...extra, metric: row.querySelector('[data-key="metric"]').value.trim(), limit: 1000 });
  const source = row.querySelector('[data-key="source"]').value.trim();
  if (source) params.set("source", source);
  return params;
}

// A comma-separated field's text split where a suggestion goes: what is typed up to the last comma (with a space
// after it, as a suggestion would read), and the entry being typed after it.
function typedParts(text) {
  const cut = text.lastIndexOf(",");
  return { head: cut >= 0 ? `${text.slice(0, cut + 1).trimEnd()} ` : "", done: text.slice(0, cut + 1), current: text.slice(cut + 1) };
}

async function metricsSuggest(source, list) {
  if (!source) {
    list.replaceChildren();
    return;
  }
  try {
    const response = await fetch(`/api/v1/series/metrics?${new URLSearchParams({ source, limit: 1000 })}`, { credentials: "same-origin" });
    if (!response.ok) return; // an unknown source: nothing to suggest (saving names the problem)
    const data = await response.json();
    list.replaceChildren(...options(data.metrics));
  } catch {
    // offline or refused: the field still takes any metric
  }
}

// The label names of the row's source and metric (the series the user may see), named under the row and offered
// in the group-by and filters fields; a metric with no such series says so (a typo, or no data yet).
async function labelsSuggest(row) {
  const source = row.querySelector('[data-key="source"]').value.trim();
  const metric = row.querySelector('[data-key="metric"]').value.trim();
  const hint = row.querySelector(".query-labels");
  row.labelNames = [];
  row.labelValues = new Map();
  if (!metric) {
    hint.hidden = true;
    return;
  }
  try {
    const response = await fetch(`/api/v1/series/label-keys?${seriesParams(row, {})}`, { credentials: "same-origin" });
    if (!response.ok) {
      hint.hidden = true; // an unknown source: saving names the problem
      return;
    }
    row.labelNames = (await response.json()).labels;
  } catch {
    hint.hidden = true;
    return;
  }
  const where = source ? ` in ${source}` : "";
  hint.textContent = row.labelNames.length
    ? `Labels of ${metric}${where}: ${row.labelNames.join(", ")}.`
    : `No series of ${metric}${where} that you may see yet: check the name, or the report stays empty until data arrives.`;
  hint.hidden = false;
}

// A comma-separated field's suggestions: what is typed before the last comma, then each label name not used yet.
function namesComplete(input, list, names, suffix) {
  const { head, done } = typedParts(input.value);
  const used = new Set(done.split(",").map((part) => part.split(/!=|=~|=/)[0].trim()));
  list.replaceChildren(...options((names ?? []).filter((name) => !used.has(name)).map((name) => `${head}${name}${suffix}`)));
}

// Once a label and = or != are typed in the filters field, it offers that label's values among the row's series
// (fetched once per label while the source and metric stay). True when it applies, false to offer names instead.
function filterValuesOffer(row, input, list) {
  const text = input.value;
  const { head, current } = typedParts(text);
  const match = /^\s*([^=!~\s]+)\s*(!=|=~|=)/.exec(current);
  if (!match || match[2] === "=~" || !(row.labelNames ?? []).includes(match[1])) return false;
  const [, label, operator] = match;
  // row.labelValues is emptied whenever the names are asked again (labelsSuggest), before any name is known.
  if (!row.labelValues.has(label)) {
    row.labelValues.set(
      label,
      fetch(`/api/v1/series/label-values?${seriesParams(row, { label })}`, { credentials: "same-origin" })
        .then((response) => (response.ok ? response.json() : { values: [] }))
        .then((data) => data.values)
        .catch(() => []),
    );
  }
  row.labelValues.get(label).then((values) => {
    if (input.value !== text) return; // typed on meanwhile: that input offers again
    // A value with a comma cannot be written in this comma-separated field (the JSON can hold it).
    const offered = values.filter((value) => !value.includes(","));
    list.replaceChildren(...options(offered.map((value) => `${head}${label}${operator}${value}`)));
  });
  return true;
}

function queryRowAdd(item) {
  const row = queryTemplate.content.firstElementChild.cloneNode(true);
  const query = item.query ?? {};
  const { text, kept } = filtersText(query.filters);
  row.queryItem = item;
  row.keptFilters = kept;
  const field = (key) => row.querySelector(`[data-key="${key}"]`);
  field("title").value = item.title ?? "";
  field("source").value = query.source ?? "";
  field("metric").value = query.metric ?? "";
  field("aggregation").value = query.aggregation ?? "avg";
  field("bucket").value = query.bucket ?? "";
  field("group_by").value = (query.group_by ?? []).join(", ");
  field("filters").value = text;
  field("unit").value = item.unit ?? "";
  field("decimals").value = item.decimals ?? "";
  const others = [...Object.keys(query).filter((key) => !SHOWN.includes(key)), ...Object.keys(kept).map((label) => `filters.${label}`)];
  const note = row.querySelector(".query-kept");
  note.hidden = others.length === 0;
  note.textContent = others.length ? `Also kept from the JSON: ${others.join(", ")}.` : "";
  // The metric field suggests the chosen source's metrics (the ones the user may query).
  const metrics = document.createElement("datalist");
  metrics.id = `query-metrics-${++queryRowCount}`;
  field("metric").setAttribute("list", metrics.id);
  row.append(metrics);
  field("source").addEventListener("change", () => {
    metricsSuggest(field("source").value.trim(), metrics);
    labelsSuggest(row);
  });
  metricsSuggest(query.source ?? "", metrics);
  field("metric").addEventListener("change", () => labelsSuggest(row));
  labelsSuggest(row);
  for (const [key, suffix] of [["group_by", ""], ["filters", "="]]) {
    const list = document.createElement("datalist");
    list.id = `query-${key}-${queryRowCount}`;
    field(key).setAttribute("list", list.id);
    row.append(list);
    for (const event of ["focus", "input"]) {
      field(key).addEventListener(event, () => {
        if (key !== "filters" || !filterValuesOffer(row, field(key), list)) namesComplete(field(key), list, row.labelNames, suffix);
      });
    }
  }
  row.querySelector(".query-remove").addEventListener("click", () => {
    row.remove();
    queriesWrite();
  });
  queryRows.append(row);
  return row;
}

function queryOf(row) {
  const field = (key) => row.querySelector(`[data-key="${key}"]`).value.trim();
  const query = { ...(row.queryItem.query ?? {}) };
  for (const key of SHOWN) delete query[key];
  if (field("source")) query.source = field("source");
  query.metric = field("metric");
  query.aggregation = field("aggregation");
  if (field("bucket")) query.bucket = field("bucket");
  const groupBy = field("group_by").split(",").map((name) => name.trim()).filter(Boolean);
  if (groupBy.length) query.group_by = groupBy;
  const filters = filtersParse(field("filters"), row.keptFilters);
  if (Object.keys(filters).length) query.filters = filters;
  const item = { title: field("title"), query };
  if (field("unit")) item.unit = field("unit");
  if (field("decimals") !== "") item.decimals = Number(field("decimals"));
  return item;
}

function queriesWrite() {
  const items = [...queryRows.children].map(queryOf);
  queriesField.value = items.length ? JSON.stringify(items) : "";
  queryEmpty.hidden = items.length > 0;
}

// Rows from the JSON field; false (rows untouched) when it is not a list of queries.
function queriesRead() {
  let items = [];
  const text = queriesField.value.trim();
  if (text) {
    try {
      items = JSON.parse(text);
    } catch {
      return false;
    }
  }
  if (!Array.isArray(items) || !items.every((item) => item && typeof item === "object" && !Array.isArray(item))) return false;
  queryRows.replaceChildren();
  for (const item of items) queryRowAdd(item);
  queryEmpty.hidden = items.length > 0;
  return true;
}

if (queriesField && queryEditor && queryTemplate) {
  if (queriesRead()) {
    queryEditor.hidden = false;
    // The JSON stays at hand, folded, unless the server refused it (then it is where the error is shown).
    queriesJson.open = queriesField.getAttribute("aria-invalid") === "true";
  }
  queryRows.addEventListener("input", queriesWrite);
  queryRows.addEventListener("change", queriesWrite);
  queriesField.addEventListener("change", queriesRead);
  document.getElementById("query-add").addEventListener("click", () => {
    const row = queryRowAdd({ title: "", query: { aggregation: "avg" } });
    queriesWrite();
    row.querySelector('[data-key="title"]').focus();
  });
}
