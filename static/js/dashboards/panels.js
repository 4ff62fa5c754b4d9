// Rendering one panel's data with plotly.js (or plain HTML for stat, bar gauge, table and text).
// Each result is {ref, axis, legend, unit, metric, series: [{labels, points: [[iso, value], ...]}]}; panels whose
// numbers the server reduces also carry reduced: [{labels, value}] (and stats a `spark` line).

import { renderAlertList } from "./alert-list.js";
import { renderMarkdown } from "./markdown.js";
import { renderTable } from "./tables.js";
import { chartColors } from "./theme.js";
import { durationSeconds } from "./timerange.js";
import { calculate, displayValue, formatValue, panelReduce, seriesDisplayName, thresholdColor } from "./values.js";

export { formatValue, thresholdColor } from "./values.js";

export const PANEL_TYPES = [
  ["timeseries", "Time series"],
  ["stat", "Stat"],
  ["gauge", "Gauge"],
  ["bargauge", "Bar gauge"],
  ["bar", "Bar"],
  ["pie", "Pie / donut"],
  ["table", "Table"],
  ["heatmap", "Heatmap"],
  ["histogram", "Histogram"],
  ["xy", "XY scatter"],
  ["state_timeline", "State timeline"],
  ["text", "Text"],
  ["alertlist", "Alert list"],
];

// Panels without queries: text shows markdown, an alert list reads the alert instances (alert-list.js).
export const QUERYLESS_TYPES = new Set(["text", "alertlist"]);

export const PALETTE = ["#3274d9", "#e0752d", "#56a64b", "#c4162a", "#8f3bb8", "#1f9aa8", "#d6a21d", "#6e7f8f"];
// No mode bar: dragging across a chart zooms (into an absolute range), and panel menus hold the exports.
const PLOTLY_CONFIG = { displaylogo: false, displayModeBar: false, responsive: true, doubleClick: false };

// Every drawn series with its display name, colour and axis, overrides applied (matched by display name).
export function named(results) {
  const items = [];
  const several = results.filter((result) => !result.hidden).length > 1;
  for (const result of results) {
    if (result.hidden) continue;
    for (const item of result.series ?? []) {
      items.push({ ...item, name: seriesDisplayName(result, item.labels, { several, count: result.series.length }), axis: result.axis || "left", ref: result.ref, unit: result.unit, bucket: result.bucket });
    }
  }
  return items;
}

function applyOverrides(items, overrides) {
  const shown = [];
  items.forEach((item, index) => {
    const override = (overrides ?? []).find((candidate) => candidate.match === item.name || candidate.match === item.ref);
    const merged = { ...item, color: PALETTE[index % PALETTE.length], ...(override ?? {}) };
    if (!merged.hide) shown.push(merged);
  });
  return shown;
}

function baseLayout(colors, options = {}) {
  const legend = options.legendOptions ?? {};
  const right = legend.placement === "right";
  return {
    margin: { l: 8, r: 8, t: 8, b: 8 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: colors.fg, size: 11 },
    showlegend: options.legend ?? true,
    legend: right
      ? { orientation: "v", x: 1.02, y: 1, xanchor: "left", yanchor: "top", font: { size: 10 } }
      : { orientation: "h", x: 0, y: 0, xanchor: "left", yanchor: "bottom", yref: "container", font: { size: 10 } },
    colorway: PALETTE,
  };
}

export function purge(element) {
  if (element._plotted) {
    window.Plotly.purge(element);
    element._plotted = false;
    element._zoomBound = false; // purge drops the chart's event handlers too
  }
}

function plot(element, data, layout, { onZoom } = {}) {
  if (!element._plotted) element.replaceChildren();
  window.Plotly.react(element, data, layout, PLOTLY_CONFIG);
  element._plotted = true;
  if (onZoom && !element._zoomBound) {
    element._zoomBound = true;
    element.on("plotly_relayout", (event) => {
      const start = event["xaxis.range[0]"];
      const end = event["xaxis.range[1]"];
      if (start && end) element._onZoom?.(toIso(start), toIso(end));
    });
  }
  element._onZoom = onZoom;
}

// Plotly reports dates as "YYYY-MM-DD HH:MM:SS.sss" in UTC on a UTC axis.
function toIso(value) {
  const text = String(value).replace(" ", "T");
  const parsed = new Date(/Z|[+-]\d\d:?\d\d$/.test(text) || !text.includes("T") ? text : `${text}Z`);
  return Number.isNaN(parsed.getTime()) ? new Date(value).toISOString() : parsed.toISOString();
}

function message(element, text, kind = "empty") {
  purge(element);
  const paragraph = document.createElement("p");
  paragraph.className = `panel-message ${kind}`;
  paragraph.textContent = text;
  element.replaceChildren(paragraph);
}

function hasData(panel, results) {
  for (const result of results) {
    if (result.hidden) continue;
    if ((result.reduced ?? []).some((item) => item.value !== null && item.value !== undefined)) return true;
    if ((result.series ?? []).some((item) => item.points?.length)) return true;
  }
  return false;
}

export function renderPanel(element, panel, results, context = {}) {
  const options = panel.options ?? {};
  const colors = chartColors();
  if (panel.type === "text") {
    purge(element);
    const body = document.createElement("div");
    body.className = "markdown";
    body.innerHTML = renderMarkdown(options.markdown ?? "");
    element.replaceChildren(body);
    return;
  }
  if (panel.type === "alertlist") {
    purge(element);
    renderAlertList(element, panel, context.alerts);
    return;
  }
  if (!(panel.queries ?? []).some((item) => item.query?.metric)) {
    message(element, "No query yet: edit the panel to choose a metric.");
    return;
  }
  if (!hasData(panel, results)) {
    message(element, "No data");
    return;
  }
  const renderers = { timeseries, stat, gauge, bargauge: barGauge, bar, pie, table, heatmap, histogram, xy, state_timeline: stateTimeline };
  (renderers[panel.type] ?? timeseries)(element, panel, results, colors, context);
}

// The time axis spans the panel's range, widened on the left to a first bucket that the range cuts (its time is the
// bucket's start, before the range's; its value is only what lies inside the range, as the server answers it):
// daily buckets over the last hour show today's part of the range, not an empty chart.
function timeAxis(colors, context, results = []) {
  const axis = { type: "date", gridcolor: colors.grid, linecolor: colors.grid, zeroline: false, automargin: true };
  if (!context.range) return axis;
  let start = context.range.start.getTime();
  for (const result of results) {
    if (result.hidden) continue;
    for (const item of result.series ?? []) {
      const first = item.points?.[0]?.[0];
      if (first !== undefined) start = Math.min(start, new Date(toIso(first)).getTime());
    }
  }
  axis.range = [new Date(start).toISOString(), context.range.end.toISOString()];
  return axis;
}

// A bar spans its bucket, [start, start + bucket), as the server counts it, instead of being centred on the bucket's
// start.
function bucketBars(bucket, share = 1) {
  const seconds = durationSeconds(bucket);
  // xperiod0 explicitly: plotly starts whole weeks on Sunday 2000-01-02, the server on 2000-01-01.
  return seconds ? { xperiod: seconds * 1000, xperiod0: "2000-01-01", xperiodalignment: "middle", width: seconds * 1000 * 0.9 * share } : {};
}

function valueAxis(colors, options, side = "left", items = []) {
  const suffix = side === "right" ? "_right" : "";
  const unit = options[`unit${suffix}`];
  const axis = { gridcolor: colors.grid, zeroline: false, fixedrange: true, automargin: true, ticksuffix: unit ? ` ${unit}` : "" };
  const decimals = options[`decimals${suffix}`] ?? options.decimals;
  if (Number.isInteger(decimals)) axis.tickformat = `,.${decimals}f`;
  const min = options[`min${suffix}`];
  const max = options[`max${suffix}`];
  const step = tickStep(items, options, decimals, [min, max]);
  if (step) Object.assign(axis, { tickmode: "linear", tick0: 0, dtick: step });
  if (Number.isFinite(min) || Number.isFinite(max)) {
    axis.range = [Number.isFinite(min) ? min : null, Number.isFinite(max) ? max : null];
    axis.autorange = !(Number.isFinite(min) && Number.isFinite(max)) ? (Number.isFinite(min) ? "max" : "min") : false;
  }
  if (side === "right") Object.assign(axis, { overlaying: "y", side: "right", showgrid: false });
  return axis;
}

// Ticks a whole number of the axis' last printed digit apart (1 with no decimals, 0.1 with one) when its values span
// only a few such steps: plotly would put ticks at fractions that the axis' format rounds into repeated labels (a
// purchases axis read "3, 3, 2, 2, 2, 1, 1"). Null leaves the ticks to plotly.
const FEW_TICKS = 5;

function tickStep(items, options, decimals, bounds) {
  if (!Number.isInteger(decimals) || !items.length) return null;
  const stacked = Boolean(options.stack);
  let low = Infinity;
  let high = -Infinity;
  let stackHigh = 0;
  let fromZero = stacked;
  for (const item of items) {
    let own = -Infinity;
    for (const point of item.points) {
      const value = point[1];
      if (value === null || value === undefined) continue;
      low = Math.min(low, value);
      own = Math.max(own, value);
    }
    high = Math.max(high, own);
    if (own > 0) stackHigh += own;
    const style = item.style ?? options.style ?? "lines";
    fromZero ||= style === "bars" || style === "areas"; // bars and filled areas draw from zero
  }
  if (!Number.isFinite(low)) return null;
  if (stacked) high = Math.max(high, stackHigh);
  if (fromZero) [low, high] = [Math.min(low, 0), Math.max(high, 0)];
  for (const bound of bounds) if (Number.isFinite(bound)) [low, high] = [Math.min(low, bound), Math.max(high, bound)];
  const step = 10 ** -decimals;
  return high - low <= FEW_TICKS * step ? step : null;
}

// The legend's values (options.legend_values, e.g. ["last", "mean", "max"]) after each name.
function legendName(item, options) {
  const values = options.legend_values ?? [];
  if (!values.length || options.legend_mode === "table") return item.name; // the table shows them in columns
  const decimals = item.axis === "right" ? options.decimals_right ?? options.decimals : options.decimals;
  const parts = values.map((calculation) => `${calculation} ${formatValue(calculate(item.points, calculation === "last" ? "last_not_null" : calculation), { decimals })}`);
  return `${item.name} (${parts.join(", ")})`;
}

function isSparse(points) {
  const present = (index) => points[index] !== undefined && points[index][1] !== null;
  let shown = 0;
  let isolated = 0;
  points.forEach((_, index) => {
    if (!present(index)) return;
    shown += 1;
    if (!present(index - 1) && !present(index + 1)) isolated += 1;
  });
  return shown < 3 || isolated * 2 > shown;
}

// Areas fill down to zero, or, stacked, down to the series below; lines fill nothing (a stack group would fill them
// by default).
function areaFill(style, stacked) {
  if (style !== "areas") return "none";
  return stacked ? "tonexty" : "tozeroy";
}

function timeseries(element, panel, results, colors, context) {
  const options = panel.options ?? {};
  const items = applyOverrides(named(results), options.overrides);
  const right = items.some((item) => item.axis === "right");
  // Bars side by side (not stacked) share their bucket's width.
  const barCount = options.stack ? 1 : Math.max(1, items.filter((item) => (item.style ?? options.style) === "bars").length);
  const data = items.map((item) => {
    const style = item.style ?? options.style ?? "lines";
    const unit = item.unit || (item.axis === "right" ? options.unit_right : options.unit);
    const decimals = Number.isInteger(options.decimals) ? options.decimals : 2;
    const trace = {
      name: legendName(item, options),
      x: item.points.map((point) => point[0]),
      y: item.points.map((point) => point[1]),
      yaxis: item.axis === "right" ? "y2" : "y",
      // The bucket a point covers (it widens with the range): "per 1m", "per 1h".
      hovertemplate: `%{y:,.${decimals}f}${unit ? ` ${unit}` : ""}${item.bucket ? ` per ${item.bucket}` : ""}<extra>${item.name.replace(/</g, "&lt;")}</extra>`,
    };
    if (style === "bars") return { ...trace, type: "bar", marker: { color: item.color }, ...bucketBars(item.bucket, 1 / barCount) };
    // A sparse series (a few buckets, or points between gaps: a reading a minute in 10 s buckets) shows its
    // points, not an invisible line.
    const sparse = isSparse(item.points);
    return { ...trace, type: "scatter", mode: sparse ? "lines+markers" : "lines", marker: { size: 5, color: item.color }, line: { width: 1.5, color: item.color }, fill: areaFill(style, options.stack), connectgaps: false };
  });
  const legendShown = options.legend ?? items.length > 1;
  // Table mode: an HTML table (a row per series, a column per value) in place of plotly's legend.
  const legendTable = legendShown && options.legend_mode === "table";
  const layout = {
    ...baseLayout(colors, { legend: legendShown && !legendTable, legendOptions: { placement: options.legend_placement } }),
    xaxis: timeAxis(colors, context, results),
    yaxis: valueAxis(colors, options, "left", items.filter((item) => item.axis !== "right")),
    dragmode: "zoom",
    barmode: options.stack ? "stack" : "group",
    hovermode: "x unified",
    shapes: context.annotations ?? [],
  };
  if (right) layout.yaxis2 = valueAxis(colors, options, "right", items.filter((item) => item.axis === "right"));
  if (options.stack) {
    for (const trace of data) {
      if (trace.type === "scatter") {
        trace.stackgroup = trace.yaxis;
      }
    }
  }
  const thresholdLines = (options.thresholds ?? []).filter((item) => item.value !== null && item.value !== undefined);
  if (options.threshold_lines) {
    layout.shapes = [...layout.shapes, ...thresholdLines.map((item) => ({ type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: item.value, y1: item.value, line: { color: item.color, dash: "dash", width: 1 } }))];
  }
  // Margins seeded with what the tick labels will need: plotly's automargin then finds them wide enough and draws
  // once, instead of drawing, measuring and drawing again (about half of a time series' drawing time).
  layout.margin = { ...layout.margin, ...seededMargins(items, options, right) };
  if (layout.showlegend && options.legend_placement !== "right") layout.margin.b += legendRowsPixels(element, data);
  const room = legendTable ? legendTableRoom(element, items.length, options) : null;
  // Below the chart the table leaves room for the time axis's tick labels (about 30 px) too.
  if (room) layout.margin = { ...layout.margin, ...(room.side === "right" ? { r: room.pixels + 8 } : { b: room.pixels + 38 }) };
  plot(element, data, layout, { onZoom: context.onZoom });
  element.querySelector(":scope > .legend-table-wrap")?.remove();
  if (room) element.append(legendTableElement(element, items, options, room));
}

// Pixels per character of an 11 px tick label (digits are the widest of what axes print), and the date axis'
// two lines ("10:40" over "Dec 6, 2026").
const TICK_CHAR_PIXELS = 7;
const DATE_AXIS_PIXELS = 36;

function seededMargins(items, options, right) {
  const margins = { b: DATE_AXIS_PIXELS };
  const stacked = Boolean(options.stack);
  margins.l = axisLabelPixels(items.filter((item) => item.axis !== "right"), options.decimals, options.unit, stacked);
  if (right) margins.r = axisLabelPixels(items.filter((item) => item.axis === "right"), options.decimals_right ?? options.decimals, options.unit_right, stacked);
  return margins;
}

// The widest tick label an axis over these series' values may print (an estimate on the generous side; automargin
// still widens the margin when it is short, so a label is never cut off).
function axisLabelPixels(items, decimals, unit, stacked) {
  let largest = 0;
  let negative = false;
  for (const item of items) {
    let own = 0;
    for (const point of item.points) {
      const value = point[1];
      if (value === null || value === undefined) continue;
      own = Math.max(own, Math.abs(value));
      negative ||= value < 0;
    }
    largest = stacked ? largest + own : Math.max(largest, own); // stacked series reach the sum
  }
  const integer = largest >= 1 ? Math.floor(Math.log10(largest)) + 1 : 1;
  const digits = largest >= 10000 && !Number.isInteger(decimals) ? 5 : integer + Math.floor((integer - 1) / 3); // plotly prints 12k, 1.5M
  const fraction = Number.isInteger(decimals) ? decimals + (decimals > 0 ? 1 : 0) : largest < 10 ? 3 : 2;
  const characters = digits + fraction + (negative ? 1 : 0) + (unit ? unit.length + 1 : 0);
  return Math.min(120, characters * TICK_CHAR_PIXELS + 10);
}

// The height of plotly's horizontal legend under the chart: its items (a symbol and the name at 10 px) wrap into
// rows of the panel's width.
function legendRowsPixels(element, traces) {
  const width = Math.max(100, element.clientWidth - 16);
  let rows = 1;
  let used = 0;
  for (const trace of traces) {
    const item = 46 + String(trace.name ?? "").length * 6;
    if (used && used + item > width) {
      rows += 1;
      used = 0;
    }
    used += item;
  }
  return rows * 19 + 18; // on the generous side: a margin short by a pixel still costs plotly a second drawing
}

// Legend tables take the bottom (at most 45 % of the height) or the right (at most 45 % of the width) of the panel.
const LEGEND_ROW_PIXELS = 21;

function legendTableRoom(element, rows, options) {
  const side = options.legend_placement === "right" ? "right" : "bottom";
  const limit = side === "right" ? element.clientWidth * 0.45 : element.clientHeight * 0.45;
  const wanted = side === "right" ? 120 + 64 * (options.legend_values ?? []).length : LEGEND_ROW_PIXELS * (rows + 1) + 6;
  return { side, pixels: Math.max(40, Math.min(wanted, limit)) };
}

// The legend as a table: each series' colour and name, then options.legend_values (last, mean, max, min, sum)
// computed over the points drawn; clicking a row hides or shows its series.
function legendTableElement(element, items, options, room) {
  const values = options.legend_values ?? [];
  const wrap = Object.assign(document.createElement("div"), { className: `legend-table-wrap ${room.side}` });
  wrap.style[room.side === "right" ? "width" : "height"] = `${Math.floor(room.pixels)}px`;
  const table = Object.assign(document.createElement("table"), { className: "legend-table" });
  const head = table.createTHead().insertRow();
  for (const title of ["Name", ...values.map((value) => value[0].toUpperCase() + value.slice(1))]) {
    head.append(Object.assign(document.createElement("th"), { textContent: title, scope: "col" }));
  }
  const body = table.createTBody();
  items.forEach((item, index) => {
    const row = body.insertRow();
    row.dataset.series = item.name;
    const name = row.insertCell();
    const swatch = Object.assign(document.createElement("span"), { className: "legend-swatch" });
    swatch.style.background = item.color;
    name.append(swatch, document.createTextNode(item.name));
    const decimals = item.axis === "right" ? options.decimals_right ?? options.decimals : options.decimals;
    const unit = item.unit || (item.axis === "right" ? options.unit_right : options.unit);
    for (const value of values) {
      const cell = row.insertCell();
      cell.dataset.value = value;
      cell.textContent = formatValue(calculate(item.points, value === "last" ? "last_not_null" : value), { decimals, unit });
    }
    row.addEventListener("click", () => {
      const hidden = row.classList.toggle("off");
      window.Plotly.restyle(element, { visible: hidden ? "legendonly" : true }, [index]);
    });
  });
  wrap.append(table);
  return wrap;
}

function reducedItems(results, options) {
  const items = [];
  const several = results.filter((result) => !result.hidden).length > 1;
  for (const result of results) {
    if (result.hidden) continue;
    for (const item of result.reduced ?? []) {
      const labelled = Object.keys(item.labels ?? {}).length;
      const name = result.legend || labelled || several ? seriesDisplayName(result, item.labels, { several, count: result.reduced.length }) : "";
      items.push({ name, value: item.value, labels: item.labels, ref: result.ref, metric: result.metric, unit: result.unit || options.unit });
    }
  }
  return items;
}

function stat(element, panel, results, colors) {
  purge(element);
  const options = panel.options ?? {};
  const items = reducedItems(results, options);
  const wrapper = document.createElement("div");
  wrapper.className = `stat${items.length > 1 ? " stat-many" : ""}`;
  for (const item of items) {
    const shown = displayValue(item.value, { ...options, unit: item.unit }, colors.fg);
    const number = Object.assign(document.createElement("div"), { className: "stat-value", textContent: item.value === null ? "No data" : shown.text });
    number.style.color = shown.color;
    const label = Object.assign(document.createElement("div"), { className: "stat-label", textContent: item.name });
    const main = Object.assign(document.createElement("div"), { className: "stat-main" });
    main.append(number, label);
    wrapper.append(main);
  }
  const spark = results.find((result) => result.spark?.length)?.spark;
  element.replaceChildren(wrapper);
  if (options.sparkline !== false && spark && spark.length > 1 && items.length === 1) {
    const line = Object.assign(document.createElement("div"), { className: "stat-sparkline" });
    wrapper.append(line);
    const color = displayValue(items[0].value, options, PALETTE[0]).color;
    window.Plotly.newPlot(
      line,
      [{ x: spark.map((p) => p[0]), y: spark.map((p) => p[1]), type: "scatter", mode: "lines", fill: "tozeroy", line: { color, width: 1 }, hoverinfo: "skip" }],
      { margin: { l: 0, r: 0, t: 0, b: 0 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", xaxis: { visible: false, fixedrange: true }, yaxis: { visible: false, fixedrange: true }, showlegend: false },
      { staticPlot: true, responsive: true },
    );
  }
}

function gauge(element, panel, results, colors) {
  const options = panel.options ?? {};
  const items = reducedItems(results, options);
  const min = Number.isFinite(options.min) ? options.min : 0;
  const top = Math.max(...items.map((item) => item.value ?? 0));
  const max = Number.isFinite(options.max) ? options.max : Math.max(100, Math.ceil(top * 1.2));
  const sorted = [...(options.thresholds ?? [])].sort((a, b) => (a.value ?? min) - (b.value ?? min));
  const steps = sorted.map((threshold, index) => ({ range: [threshold.value ?? min, sorted[index + 1]?.value ?? max], color: threshold.color }));
  const columns = Math.min(items.length, 4);
  const rows = Math.ceil(items.length / columns);
  const data = items.map((item, index) => {
    const column = index % columns;
    const row = Math.floor(index / columns);
    const shown = displayValue(item.value, options, PALETTE[0]);
    return {
      type: "indicator",
      mode: "gauge+number",
      value: item.value ?? 0,
      title: item.name ? { text: item.name, font: { size: 11 } } : undefined,
      domain: { x: [column / columns, (column + 1) / columns], y: [1 - (row + 1) / rows, 1 - row / rows] },
      number: { suffix: item.unit ? ` ${item.unit}` : "", valueformat: Number.isInteger(options.decimals) ? `,.${options.decimals}f` : "" },
      gauge: { axis: { range: [min, max] }, bar: { color: shown.color }, steps, bgcolor: "rgba(0,0,0,0)" },
    };
  });
  plot(element, data, { ...baseLayout(colors, { legend: false }), margin: { l: 24, r: 24, t: 24, b: 8 } });
}

// Bar gauge: one horizontal bar per value, filled to its share of [min, max], coloured by the thresholds.
function barGauge(element, panel, results, colors) {
  purge(element);
  const options = panel.options ?? {};
  const items = reducedItems(results, options);
  const min = Number.isFinite(options.min) ? options.min : 0;
  const max = Number.isFinite(options.max) ? options.max : Math.max(...items.map((item) => item.value ?? 0), min + 1);
  const list = document.createElement("div");
  list.className = `bar-gauge ${options.orientation === "vertical" ? "vertical" : "horizontal"}`;
  for (const item of items) {
    const shown = displayValue(item.value, { ...options, unit: item.unit }, PALETTE[0]);
    const row = Object.assign(document.createElement("div"), { className: "bar-gauge-row" });
    const name = Object.assign(document.createElement("div"), { className: "bar-gauge-name", textContent: item.name || panel.title || "" });
    const track = Object.assign(document.createElement("div"), { className: "bar-gauge-track" });
    const fill = Object.assign(document.createElement("div"), { className: "bar-gauge-fill" });
    const share = item.value === null ? 0 : Math.max(0, Math.min(1, (item.value - min) / (max - min || 1)));
    fill.style[options.orientation === "vertical" ? "height" : "width"] = `${(share * 100).toFixed(2)}%`;
    fill.style.background = shown.color;
    track.append(fill);
    const value = Object.assign(document.createElement("div"), { className: "bar-gauge-value", textContent: shown.text });
    value.style.color = shown.color;
    row.append(name, track, value);
    list.append(row);
  }
  element.replaceChildren(list);
}

function bar(element, panel, results, colors) {
  const options = panel.options ?? {};
  const items = reducedItems(results, options);
  const horizontal = options.orientation === "horizontal";
  // An unnamed bar (one query combined into one value) is named by its metric.
  const names = items.map((item, index) => item.name || item.metric || `${index + 1}`);
  const values = items.map((item) => item.value);
  const barColors = values.map((value, index) => displayValue(value, options, PALETTE[index % PALETTE.length]).color);
  const text = values.map((value) => displayValue(value, options, "").text);
  const trace = horizontal
    ? { type: "bar", orientation: "h", y: names, x: values, marker: { color: barColors }, text, textposition: "auto", hovertemplate: "%{y}: %{text}<extra></extra>" }
    : { type: "bar", x: names, y: values, marker: { color: barColors }, text, textposition: "auto", hovertemplate: "%{x}: %{text}<extra></extra>" };
  plot(element, [trace], {
    ...baseLayout(colors, { legend: false }),
    // Names are categories even when they read as numbers ("1", "2026"): plotly would draw a numeric axis.
    xaxis: { gridcolor: colors.grid, automargin: true, fixedrange: true, ...(horizontal ? {} : { type: "category" }) },
    yaxis: { gridcolor: colors.grid, automargin: true, fixedrange: true, ...(horizontal ? { type: "category" } : {}) },
  });
}

function pie(element, panel, results, colors) {
  const options = panel.options ?? {};
  const items = reducedItems(results, options);
  plot(
    element,
    [{
      type: "pie",
      labels: items.map((item, index) => item.name || `${index + 1}`),
      values: items.map((item) => item.value ?? 0),
      hole: options.donut === false ? 0 : 0.45,
      textinfo: "percent",
      sort: false,
      marker: { colors: PALETTE },
      hovertemplate: `%{label}: %{value:,.${Number.isInteger(options.decimals) ? options.decimals : 2}f}<extra></extra>`,
    }],
    { ...baseLayout(colors, { legend: options.legend ?? true, legendOptions: { placement: options.legend_placement ?? "right" } }), margin: { l: 8, r: 8, t: 8, b: 8 } },
  );
}

function table(element, panel, results) {
  purge(element);
  renderTable(element, panel, results);
}

function heatmap(element, panel, results, colors, context) {
  const options = panel.options ?? {};
  const items = named(results);
  const times = [...new Set(items.flatMap((item) => item.points.map((point) => point[0])))].sort((a, b) => Date.parse(a) - Date.parse(b));
  const index = new Map(times.map((time, position) => [Date.parse(time), position]));
  const z = items.map((item) => {
    const row = new Array(times.length).fill(null);
    for (const [time, value] of item.points) row[index.get(Date.parse(time))] = value;
    return row;
  });
  const scale = { inferno: "Hot", viridis: "Viridis" }[options.color_scheme] ?? options.colorscale ?? "Viridis";
  plot(
    element,
    [{ type: "heatmap", x: times, y: items.map((item) => item.name), z, colorscale: scale, zmin: options.min, zmax: options.max, hoverongaps: false, colorbar: { thickness: 10, ticksuffix: options.unit ? ` ${options.unit}` : "" } }],
    { ...baseLayout(colors, { legend: false }), xaxis: timeAxis(colors, context), yaxis: { automargin: true, fixedrange: true }, dragmode: "zoom" },
    { onZoom: context.onZoom },
  );
}

// Histogram: how the values of every point fall into `options.buckets` bins (plotly picks when unset).
function histogram(element, panel, results, colors) {
  const options = panel.options ?? {};
  const items = applyOverrides(named(results), options.overrides);
  const data = items.map((item) => ({
    type: "histogram",
    name: item.name,
    x: item.points.map((point) => point[1]).filter((value) => value !== null),
    nbinsx: Number.isInteger(options.buckets) ? options.buckets : undefined,
    marker: { color: item.color },
    opacity: items.length > 1 ? 0.7 : 1,
  }));
  plot(element, data, {
    ...baseLayout(colors, { legend: options.legend ?? items.length > 1 }),
    barmode: options.stack ? "stack" : "overlay",
    xaxis: { gridcolor: colors.grid, automargin: true, fixedrange: true, ticksuffix: options.unit ? ` ${options.unit}` : "" },
    yaxis: { gridcolor: colors.grid, automargin: true, fixedrange: true, title: { text: "count" } },
  });
}

// XY scatter: query A's values on x against query B's on y, paired by labels and bucket time.
function xy(element, panel, results, colors) {
  const options = panel.options ?? {};
  const [xResult, yResult] = results;
  if (!xResult || !yResult) {
    message(element, "An XY scatter takes two queries: A for x, B for y.");
    return;
  }
  const key = (labels) => JSON.stringify(Object.entries(labels ?? {}).sort());
  const ySeries = new Map((yResult.series ?? []).map((item) => [key(item.labels), item]));
  const data = [];
  (xResult.series ?? []).forEach((item, index) => {
    const partner = ySeries.get(key(item.labels)) ?? (ySeries.size === 1 ? [...ySeries.values()][0] : null);
    if (!partner) return;
    const yByTime = new Map(partner.points.map((point) => [Date.parse(point[0]), point[1]]));
    const pairs = item.points.map((point) => [point[1], yByTime.get(Date.parse(point[0]))]).filter(([a, b]) => a !== null && b !== null && b !== undefined);
    data.push({ type: "scatter", mode: "markers", name: seriesDisplayName(xResult, item.labels), x: pairs.map((pair) => pair[0]), y: pairs.map((pair) => pair[1]), marker: { size: 6, color: PALETTE[index % PALETTE.length] } });
  });
  plot(element, data, {
    ...baseLayout(colors, { legend: options.legend ?? data.length > 1 }),
    xaxis: { gridcolor: colors.grid, automargin: true, fixedrange: true, title: { text: xResult.legend || xResult.metric }, ticksuffix: options.unit ? ` ${options.unit}` : "" },
    yaxis: { gridcolor: colors.grid, automargin: true, fixedrange: true, title: { text: yResult.legend || yResult.metric }, ticksuffix: options.unit_right ? ` ${options.unit_right}` : "" },
  });
}

// options.states: {"<number>": {label, color}}; a value shows the state of the highest key not above it.
export function stateFor(value, states) {
  const keys = Object.keys(states ?? {}).map(Number).filter(Number.isFinite).sort((a, b) => a - b);
  let match = null;
  for (const key of keys) if (value >= key) match = key;
  if (match === null) return null;
  const state = states[String(match)] ?? states[Object.keys(states).find((key) => Number(key) === match)];
  return { label: state.label || String(match), color: state.color };
}

function stateTimeline(element, panel, results, colors, context) {
  const options = panel.options ?? {};
  const items = named(results);
  const describe = (value) => stateFor(value, options.states) ?? { label: displayValue(value, { ...options, decimals: options.decimals ?? 0 }, null).text, color: null };
  const segmentsByState = new Map();
  const endOfRange = context.range ? context.range.end.getTime() : Date.now();
  for (const item of items) {
    const points = item.points.filter((point) => point[1] !== null && point[1] !== undefined);
    for (let position = 0; position < points.length; position += 1) {
      const [time, value] = points[position];
      let next = position + 1;
      const state = describe(value);
      while (next < points.length && describe(points[next][1]).label === state.label) next += 1;
      const start = Date.parse(time);
      const end = next < points.length ? Date.parse(points[next][0]) : endOfRange;
      if (!segmentsByState.has(state.label)) segmentsByState.set(state.label, { color: state.color, base: [], x: [], y: [] });
      const bucket = segmentsByState.get(state.label);
      bucket.base.push(new Date(start).toISOString());
      bucket.x.push(Math.max(end - start, 1));
      bucket.y.push(item.name);
      position = next - 1;
    }
  }
  let colorIndex = 0;
  const data = [...segmentsByState.entries()].map(([label, bucket]) => ({
    type: "bar",
    orientation: "h",
    name: label,
    base: bucket.base,
    x: bucket.x,
    y: bucket.y,
    marker: { color: bucket.color || PALETTE[colorIndex++ % PALETTE.length] },
    hovertemplate: `${label}<extra>%{y}</extra>`,
  }));
  plot(
    element,
    data,
    { ...baseLayout(colors), barmode: "overlay", xaxis: timeAxis(colors, context), yaxis: { automargin: true, fixedrange: true }, dragmode: "zoom" },
    { onZoom: context.onZoom },
  );
}

export function resizePanel(element) {
  if (element._plotted) window.Plotly.Plots.resize(element);
  const spark = element.querySelector(".stat-sparkline");
  if (spark && spark.data) window.Plotly.Plots.resize(spark);
}

export function panelImage(element, filename) {
  const target = element._plotted ? element : element.querySelector(".stat-sparkline.js-plotly-plot");
  if (!target) return false;
  window.Plotly.downloadImage(target, { format: "png", filename, width: element.clientWidth || 800, height: element.clientHeight || 400 });
  return true;
}

export function panelErrorMessage(element, text) {
  message(element, text, "error");
}

export { panelReduce };
