// The alert rule editor: a form for the rule (the dashboards' source and metric pickers), the API's field errors
// beside their fields, and a backtest preview (POST /api/v1/alert-rules/backtest) drawn with plotly.js.

import { catalog } from "../dashboards/editor.js";
import { chartColors } from "../dashboards/theme.js";
import { durationShort, errorShow, errorsClear, listParse, pairsFormat, pairsParse, patch, post, rowIds, rowPaths } from "./forms.js";

const form = document.getElementById("rule-editor");
const initial = JSON.parse(document.getElementById("rule-initial").textContent);
const ruleId = form.dataset.ruleId;
const status = document.getElementById("editor-status");
const $ = (id) => document.getElementById(id);
const RANGE_TYPES = new Set(["outside", "inside"]);
const THRESHOLD_OPS = new Set([">", ">=", "<", "<="]);
const MAX_CHARTS = 12;
// States that notify as alerting (apps/alerts/alerting/states.py ALERTING_STATES): entering or leaving one notifies.
const ALERTING = new Set(["firing", "recovering", "nodata"]);

// Query A has the form's main fields; further queries (B, C, …) are rows under it, combined by the expression.
const firstQuery = initial.queries?.[0]?.query ?? { metric: "" };
const REFS = "ABCDEFGHIJ"; // the API takes at most 10 queries
const keptAnnotations = { ...(initial.annotations ?? {}) };
for (const key of ["summary", "description", "runbook_url"]) delete keptAnnotations[key];

// ----- label filters as text: device=press-7, facility!=f3, line=~a.*, site=f1|f2 -----

function filtersFormat(filters) {
  return Object.entries(filters ?? {}).map(([label, condition]) => {
    if (typeof condition === "string") return `${label}=${condition}`;
    if (Array.isArray(condition)) return `${label}=${condition.join("|")}`;
    const [operator, operand] = Object.entries(condition ?? {})[0] ?? ["eq", ""];
    const values = Array.isArray(operand) ? operand.join("|") : operand;
    return `${label}${{ eq: "=", in: "=", ne: "!=", not_in: "!=", regex: "=~" }[operator] ?? "="}${values}`;
  }).join(", ");
}

function filtersParse(text) {
  const filters = {};
  for (const part of String(text).split(",")) {
    const trimmed = part.trim();
    if (!trimmed) continue;
    const found = /^([^=!~\s]+)\s*(=~|!=|=)\s*(.+)$/.exec(trimmed);
    if (!found) throw new Error(`"${trimmed}" is not label=value, label!=value or label=~pattern.`);
    const [, label, operator, value] = found;
    const values = value.split("|").map((item) => item.trim());
    if (operator === "=~") filters[label] = { regex: value.trim() };
    else if (operator === "!=") filters[label] = values.length > 1 ? { not_in: values } : { ne: values[0] };
    else filters[label] = values.length > 1 ? values : values[0];
  }
  return filters;
}

// ----- filling the form from a rule -----

function fill(rule) {
  $("rule-name").value = rule.name ?? "";
  $("rule-severity").value = rule.severity ?? "warning";
  $("rule-enabled").checked = rule.enabled !== false;
  if (firstQuery.source) $("rule-source").append(new Option(firstQuery.source, firstQuery.source, true, true)); // before the list loads
  $("rule-metric").value = firstQuery.metric ?? "";
  $("rule-filters").value = filtersFormat(firstQuery.filters);
  $("rule-group-by").value = (rule.group_by ?? []).join(", ");
  $("rule-reduction").value = rule.reduction === "avg" ? "mean" : (rule.reduction ?? "last");
  $("rule-window").value = durationShort(rule.window ?? "5m");
  $("rule-interval").value = durationShort(rule.interval ?? "1m");
  const condition = rule.condition ?? {};
  const op = { above: ">", below: "<" }[condition.op] ?? condition.op ?? ">";
  $("rule-condition").value = condition.type === "threshold" ? op : (condition.type ?? ">");
  for (const key of ["value", "recovery", "min", "max", "recovery_min", "recovery_max", "points", "level"]) {
    const input = $(`rule-${key.replace("_", "-")}`);
    if (input) input.value = condition[key] ?? "";
  }
  $("rule-for").value = durationShort(rule.for ?? "0s");
  $("rule-keep-firing").value = durationShort(rule.keep_firing_for ?? "0s");
  $("rule-no-data").value = rule.no_data_for ? durationShort(rule.no_data_for) : "";
  $("rule-summary").value = rule.annotations?.summary ?? "";
  $("rule-description").value = rule.annotations?.description ?? "";
  $("rule-runbook").value = rule.annotations?.runbook_url ?? "";
  $("rule-labels").value = pairsFormat(rule.labels);
  const chosen = new Set((rule.contact_points ?? []).map(String));
  for (const box of form.querySelectorAll("input[name=contact_points]")) box.checked = chosen.has(box.value);
  $("rule-group-wait").value = durationShort(rule.group_wait ?? "0s");
  for (const item of (rule.queries ?? []).slice(1)) queryAdd(item);
  $("rule-expression").value = rule.expression ?? "";
  conditionShow();
}

// ----- further queries: a row each, keeping what the form does not show (limit, aggregation) -----

const moreQueries = $("rule-more-queries");

function queryRows() {
  return [...moreQueries.querySelectorAll(".more-query")];
}

// Each row answers for its position's paths (queries[2].query.metric), so a refusal lands beside it.
function queriesRenumber() {
  queryRows().forEach((row, position) => rowPaths(row, `queries[${position + 1}]`));
  const several = queryRows().length > 0;
  $("rule-expression-field").hidden = !several;
  $("rule-query-title").textContent = several ? `Query ${initial.queries?.[0]?.ref ?? "A"}` : "Query";
  $("rule-add-query").disabled = queryRows().length + 1 >= REFS.length;
}

function queryAdd(item = null) {
  const used = new Set([initial.queries?.[0]?.ref ?? "A", ...queryRows().map((row) => row.dataset.ref)]);
  const ref = item?.ref ?? [...REFS].find((letter) => !used.has(letter));
  const row = $("rule-query-template").content.firstElementChild.cloneNode(true);
  row.dataset.ref = ref;
  row.kept = item?.query ?? {};
  row.querySelector("legend").textContent = `Query ${ref}`;
  row.querySelector("[data-remove-query]").textContent = `Remove query ${ref}`;
  rowIds(row, "rule", ref);
  const picker = row.querySelector("[data-name=source]");
  const metric = row.querySelector("[data-name=metric]");
  const list = row.querySelector("datalist");
  list.id = `rule-metric-list-${ref}`;
  metric.setAttribute("list", list.id);
  for (const option of $("rule-source").options) if (option.value) picker.append(new Option(option.textContent, option.value));
  if (row.kept.source && ![...picker.options].some((option) => option.value === row.kept.source)) picker.append(new Option(row.kept.source, row.kept.source));
  picker.value = row.kept.source ?? $("rule-source").value;
  metric.value = row.kept.metric ?? "";
  row.querySelector("[data-name=filters]").value = filtersFormat(row.kept.filters);
  const metricsFill = () => catalog.metrics(picker.value || undefined).then((metrics) => list.replaceChildren(...metrics.map((name) => new Option(name, name)))).catch(() => list.replaceChildren());
  picker.addEventListener("change", metricsFill);
  metricsFill();
  moreQueries.append(row);
  queriesRenumber();
  return row;
}

function queryRowBody(row, index) {
  const query = { ...row.kept, metric: row.querySelector("[data-name=metric]").value.trim() };
  const source = row.querySelector("[data-name=source]").value;
  if (source) query.source = source;
  else delete query.source;
  let filters;
  try {
    filters = filtersParse(row.querySelector("[data-name=filters]").value);
  } catch (error) {
    throw fieldError(`queries[${index}].query.filters`, error.message);
  }
  if (Object.keys(filters).length) query.filters = filters;
  else delete query.filters;
  return { ref: row.dataset.ref, query };
}

function conditionShow() {
  const type = $("rule-condition").value;
  const group = THRESHOLD_OPS.has(type) ? "threshold" : type;
  for (const node of form.querySelectorAll("[data-condition]")) {
    const wanted = node.dataset.condition;
    node.hidden = !(wanted === group || (wanted === "range" && RANGE_TYPES.has(type)));
  }
}

// ----- pickers: sources, metrics, label names (the dashboards' catalog) -----

function sourcesLoad() {
  catalog.sources().then((sources) => {
    const picker = $("rule-source");
    for (const source of sources) {
      const label = source.name ? `${source.name} (${source.slug})` : source.slug;
      const present = [...picker.options].find((option) => option.value === source.slug);
      if (present) present.textContent = label;
      else picker.append(new Option(label, source.slug));
      for (const row of queryRows()) {
        const rowPicker = row.querySelector("[data-name=source]");
        const known = [...rowPicker.options].find((option) => option.value === source.slug);
        if (known) known.textContent = label;
        else rowPicker.append(new Option(label, source.slug));
      }
    }
    metricsLoad();
  }).catch((error) => (status.textContent = `Sources: ${error.message}`));
}

function metricsLoad() {
  catalog.metrics($("rule-source").value || undefined).then((metrics) => {
    $("rule-metric-list").replaceChildren(...metrics.map((metric) => new Option(metric, metric)));
  }).catch((error) => (status.textContent = `Metrics: ${error.message}`));
  labelsLoad();
}

function labelsLoad() {
  const box = $("rule-label-suggestions");
  const metric = $("rule-metric").value.trim();
  box.replaceChildren();
  if (!metric) return;
  catalog.labelKeys($("rule-source").value || undefined, metric).then((keys) => {
    if (!keys.length) return;
    const buttons = keys.map((key) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.textContent = `+ ${key}`;
      button.setAttribute("aria-label", `Group by ${key}`);
      button.addEventListener("click", () => {
        const labels = listParse($("rule-group-by").value);
        if (!labels.includes(key)) $("rule-group-by").value = [...labels, key].join(", ");
      });
      return button;
    });
    box.replaceChildren(Object.assign(document.createElement("span"), { className: "help", textContent: "Labels: " }), ...buttons);
  }).catch(() => box.replaceChildren());
}

// ----- the body the API takes -----

function fieldError(field, message) {
  const error = new Error(message);
  error.body = { field, detail: `${field}: ${message}` };
  return error;
}

function numberOf(id) {
  const text = $(id).value.trim();
  return text === "" ? undefined : Number(text);
}

function conditionBody() {
  const type = $("rule-condition").value;
  const parts = THRESHOLD_OPS.has(type)
    ? { type: "threshold", op: type, value: numberOf("rule-value"), recovery: numberOf("rule-recovery") }
    : type === "anomaly"
      ? { type, points: numberOf("rule-points"), level: numberOf("rule-level") }
      : { type, min: numberOf("rule-min"), max: numberOf("rule-max"), ...(type === "outside" ? { recovery_min: numberOf("rule-recovery-min"), recovery_max: numberOf("rule-recovery-max") } : {}) };
  return Object.fromEntries(Object.entries(parts).filter(([, value]) => value !== undefined));
}

function ruleBody() {
  const query = { metric: $("rule-metric").value.trim() };
  if ($("rule-source").value) query.source = $("rule-source").value;
  let filters;
  try {
    filters = filtersParse($("rule-filters").value);
  } catch (error) {
    throw fieldError("query.filters", error.message);
  }
  if (Object.keys(filters).length) query.filters = filters;
  if (firstQuery.limit) query.limit = firstQuery.limit;
  let labels;
  try {
    labels = pairsParse($("rule-labels").value);
  } catch (error) {
    throw fieldError("labels", error.message);
  }
  const annotations = { ...keptAnnotations };
  for (const [key, id] of [["summary", "rule-summary"], ["description", "rule-description"], ["runbook_url", "rule-runbook"]]) {
    const text = $(id).value.trim();
    if (text) annotations[key] = text;
  }
  const body = {
    name: $("rule-name").value.trim(),
    enabled: $("rule-enabled").checked,
    severity: $("rule-severity").value,
    queries: [{ ref: initial.queries?.[0]?.ref ?? "A", query }, ...queryRows().map((row, position) => queryRowBody(row, position + 1))],
    group_by: listParse($("rule-group-by").value),
    reduction: $("rule-reduction").value,
    window: $("rule-window").value.trim() || "5m",
    interval: $("rule-interval").value.trim() || "1m",
    condition: conditionBody(),
    for: $("rule-for").value.trim() || "0s",
    keep_firing_for: $("rule-keep-firing").value.trim() || "0s",
    no_data_for: $("rule-no-data").value.trim() || null,
    labels,
    annotations,
    contact_points: [...form.querySelectorAll("input[name=contact_points]:checked")].map((box) => Number(box.value)),
    group_wait: $("rule-group-wait").value.trim() || "0s",
  };
  body.expression = queryRows().length ? $("rule-expression").value.trim() : "";
  return body;
}

function failed(error) {
  if (!errorShow(form, error)) status.textContent = error.message;
  else status.textContent = "Please correct the field marked below.";
}

// ----- backtest preview -----

function segments(timeline) {
  // Contiguous runs of pending or alerting steps, as shaded bands.
  const bands = [];
  let open = null;
  timeline.forEach(([time, , state], index) => {
    const shaded = state === "pending" ? "pending" : state === "firing" || state === "recovering" ? "firing" : null;
    if (open && open.kind !== shaded) {
      open.end = time;
      bands.push(open);
      open = null;
    }
    if (shaded && !open) open = { kind: shaded, start: time };
    if (open && index === timeline.length - 1) {
      open.end = time;
      bands.push(open);
    }
  });
  return bands;
}

function thresholds(condition) {
  return ["value", "recovery", "min", "max", "recovery_min", "recovery_max"]
    .filter((key) => Number.isFinite(condition[key]))
    .map((key) => ({ value: condition[key], dash: key.startsWith("recovery") ? "dot" : "dash" }));
}

function chartDraw(container, group, condition) {
  const colors = chartColors();
  const times = group.timeline.map((step) => step[0]);
  const fired = group.transitions.filter((change) => change.to === "firing" || change.to === "nodata");
  const resolved = group.transitions.filter((change) => change.to === "normal" && change.from !== "pending");
  const data = [
    { type: "scatter", mode: "lines", name: "value", x: times, y: group.timeline.map((step) => step[1]), line: { color: "#3274d9", width: 1.5 }, connectgaps: true },
    { type: "scatter", mode: "markers", name: "fires", x: fired.map((change) => change.at), y: fired.map((change) => change.value), marker: { color: "#c4162a", size: 9, symbol: "triangle-up" } },
    { type: "scatter", mode: "markers", name: "resolves", x: resolved.map((change) => change.at), y: resolved.map((change) => change.value), marker: { color: "#56a64b", size: 9, symbol: "circle" } },
  ];
  const shapes = segments(group.timeline).map((band) => ({
    type: "rect", xref: "x", yref: "paper", x0: band.start, x1: band.end, y0: 0, y1: 1, line: { width: 0 }, layer: "below",
    fillcolor: band.kind === "firing" ? "rgba(196, 22, 42, 0.18)" : "rgba(214, 162, 29, 0.18)",
  }));
  for (const line of thresholds(condition)) {
    shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: line.value, y1: line.value, line: { color: "#c4162a", width: 1, dash: line.dash } });
  }
  const layout = {
    height: 200, margin: { l: 8, r: 8, t: 8, b: 8 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: colors.fg, size: 11 }, showlegend: true,
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 10 } },
    xaxis: { type: "date", gridcolor: colors.grid, automargin: true }, yaxis: { gridcolor: colors.grid, automargin: true, fixedrange: true },
    shapes, hovermode: "x unified",
  };
  window.Plotly.react(container, data, layout, { displaylogo: false, displayModeBar: false, responsive: true });
}

// The label sets that would fire (most first, then most notifications), then the calm ones in the API's order:
// only the first MAX_CHARTS are drawn, and with 50 machines the ones that fired were past them.
function groupsBusiestFirst(groups) {
  const counted = groups.map((group, index) => ({
    group,
    index,
    fires: group.transitions.filter((change) => change.to === "firing").length,
    notifies: group.transitions.filter((change) => ALERTING.has(change.from) !== ALERTING.has(change.to)).length,
  }));
  return counted.sort((a, b) => b.fires - a.fires || b.notifies - a.notifies || a.index - b.index);
}

async function backtest() {
  errorsClear(form);
  const summary = $("backtest-summary");
  summary.textContent = "Running the backtest…";
  try {
    const body = ruleBody();
    const range = $("backtest-range").value;
    const result = await post(`/api/v1/alert-rules/backtest?start=${encodeURIComponent(range)}`, body);
    summary.textContent = `Over ${range === "-7d" ? "the last 7 days" : "the last 24 hours"} the rule would have fired ${result.firings} time(s) and sent ${result.notifications} notification(s), across ${result.groups.length} label set(s) (one evaluation every ${durationShort(result.step)}).`;
    summary.dataset.firings = result.firings;
    summary.dataset.notifications = result.notifications;
    const charts = $("backtest-charts");
    for (const old of charts.querySelectorAll(".js-plotly-plot")) window.Plotly.purge(old);
    charts.replaceChildren();
    for (const { group, fires, notifies } of groupsBusiestFirst(result.groups).slice(0, MAX_CHARTS)) {
      const figure = document.createElement("figure");
      figure.className = "backtest-figure";
      const labels = Object.entries(group.labels).map(([key, value]) => `${key}=${value}`).join(", ") || "all series";
      figure.append(Object.assign(document.createElement("figcaption"), { textContent: `${labels}: fires ${fires} time(s), ${notifies} notification(s), ${group.transitions.length} state change(s)` }));
      const chart = Object.assign(document.createElement("div"), { className: "backtest-chart" });
      chart.setAttribute("role", "img");
      chart.setAttribute("aria-label", `Values of ${labels} with the periods the rule would have been pending or firing shaded`);
      figure.append(chart);
      charts.append(figure);
      chartDraw(chart, group, body.condition);
    }
    if (result.groups.length > MAX_CHARTS) charts.append(Object.assign(document.createElement("p"), { className: "help", textContent: `The first ${MAX_CHARTS} label sets are drawn.` }));
  } catch (error) {
    summary.textContent = "";
    failed(error);
  }
}

async function save(event) {
  event.preventDefault();
  errorsClear(form);
  status.textContent = "Saving…";
  try {
    const body = ruleBody();
    const rule = ruleId ? await patch(`/api/v1/alert-rules/${ruleId}/`, body) : await post("/api/v1/alert-rules/", body);
    window.location.href = `/alerts/rules/${rule.id}`;
  } catch (error) {
    failed(error);
  }
}

$("rule-add-query").addEventListener("click", () => queryAdd().querySelector("[data-name=metric]").focus());
moreQueries.addEventListener("click", (event) => {
  const remove = event.target.closest("[data-remove-query]");
  if (!remove) return;
  remove.closest(".more-query").remove();
  queriesRenumber();
  $("rule-add-query").focus();
});
fill(initial);
sourcesLoad();
$("rule-condition").addEventListener("change", conditionShow);
$("rule-source").addEventListener("change", metricsLoad);
$("rule-metric").addEventListener("change", labelsLoad);
$("backtest-run").addEventListener("click", backtest);
form.addEventListener("submit", save);
