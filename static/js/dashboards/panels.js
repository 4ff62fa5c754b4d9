// Rendering one panel's data with plotly.js (or plain HTML for stat, table and text).
// Each result is {ref, axis, series: [{labels, points: [[iso, value], ...]}]}.

import { seriesName } from "./csv.js";
import { renderMarkdown } from "./markdown.js";
import { lastValue } from "./series.js";
import { chartColors } from "./theme.js";

export const PANEL_TYPES = [
  ["timeseries", "Time series"],
  ["stat", "Stat"],
  ["gauge", "Gauge"],
  ["bar", "Bar"],
  ["pie", "Pie / donut"],
  ["table", "Table"],
  ["heatmap", "Heatmap"],
  ["state_timeline", "State timeline"],
  ["text", "Text"],
];

const PALETTE = ["#3274d9", "#e0752d", "#56a64b", "#c4162a", "#8f3bb8", "#1f9aa8", "#d6a21d", "#6e7f8f"];
// No mode bar: dragging across a chart zooms (into an absolute range), and panel menus hold the exports.
const PLOTLY_CONFIG = { displaylogo: false, displayModeBar: false, responsive: true, doubleClick: false };

export function formatValue(value, options = {}) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const decimals = Number.isInteger(options.decimals) ? options.decimals : Math.abs(value) >= 100 ? 0 : 2;
  const text = Number(value).toLocaleString(undefined, { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
  return options.unit ? `${text} ${options.unit}` : text;
}

// thresholds: [{value, color}]; the colour of the highest threshold at or below `value`.
export function thresholdColor(value, thresholds, fallback) {
  let color = fallback;
  const sorted = [...(thresholds ?? [])].filter((item) => item && item.color).sort((a, b) => (a.value ?? -Infinity) - (b.value ?? -Infinity));
  for (const threshold of sorted) {
    if (value !== null && value !== undefined && (threshold.value === null || threshold.value === undefined || value >= threshold.value)) {
      color = threshold.color;
    }
  }
  return color;
}

function named(results) {
  const items = [];
  for (const result of results) {
    if (result.hidden) continue;
    for (const item of result.series ?? []) {
      const labels = seriesName(item.labels, "");
      const base = result.legend ? (labels ? `${result.legend} ${labels}` : result.legend) : labels || result.metric || result.ref || "value";
      const name = results.length > 1 && !result.legend ? `${result.ref}: ${base}` : base;
      items.push({ ...item, name, axis: result.axis || "left", ref: result.ref });
    }
  }
  return items;
}

// options.reduce picks the one number a stat, gauge, bar or pie shows of a series (the last by default).
export function reduceValue(item, reduce = "last") {
  const values = (item?.points ?? []).map((point) => point[1]).filter((value) => value !== null && value !== undefined);
  if (!values.length) return null;
  switch (reduce) {
    case "first":
      return values[0];
    case "sum":
      return values.reduce((total, value) => total + value, 0);
    case "avg":
      return values.reduce((total, value) => total + value, 0) / values.length;
    case "min":
      return Math.min(...values);
    case "max":
      return Math.max(...values);
    default:
      return lastValue(item);
  }
}

function baseLayout(colors, options = {}) {
  return {
    margin: { l: 48, r: options.right ? 48 : 16, t: 8, b: 32 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: colors.fg, size: 11 },
    showlegend: options.legend ?? true,
    legend: { orientation: "h", x: 0, y: 1, xanchor: "left", yanchor: "bottom", font: { size: 10 } },
    colorway: PALETTE,
  };
}

function purge(element) {
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
  const items = named(results);
  if (!items.length || items.every((item) => !item.points?.length)) {
    message(element, (panel.queries ?? []).length ? "No data in this time range." : "No query yet: edit the panel to choose a metric.");
    return;
  }
  const renderers = { timeseries, stat, gauge, bar, pie, table, heatmap, state_timeline: stateTimeline };
  (renderers[panel.type] ?? timeseries)(element, items, options, colors, context);
}

function timeAxis(colors, context) {
  const axis = { type: "date", gridcolor: colors.grid, linecolor: colors.grid, zeroline: false, automargin: true };
  if (context.range) axis.range = [context.range.start.toISOString(), context.range.end.toISOString()];
  return axis;
}

function timeseries(element, items, options, colors, context) {
  const style = options.style ?? "lines";
  const right = items.some((item) => item.axis === "right");
  const data = items.map((item) => {
    const trace = {
      name: item.name,
      x: item.points.map((point) => point[0]),
      y: item.points.map((point) => point[1]),
      yaxis: item.axis === "right" ? "y2" : "y",
      hovertemplate: `%{y:.${Number.isInteger(options.decimals) ? options.decimals : 2}f}${options.unit ? ` ${options.unit}` : ""}<extra>%{fullData.name}</extra>`,
    };
    if (style === "bars") return { ...trace, type: "bar" };
    return { ...trace, type: "scatter", mode: "lines", line: { width: 1.5 }, fill: style === "areas" ? "tozeroy" : "none", connectgaps: false };
  });
  const layout = {
    ...baseLayout(colors, { right, legend: options.legend ?? items.length > 1 }),
    xaxis: timeAxis(colors, context),
    yaxis: { gridcolor: colors.grid, zeroline: false, fixedrange: true, ticksuffix: options.unit ? ` ${options.unit}` : "" },
    dragmode: "zoom",
    barmode: "group",
    hovermode: "x unified",
    shapes: context.annotations ?? [],
  };
  if (right) layout.yaxis2 = { overlaying: "y", side: "right", showgrid: false, fixedrange: true, ticksuffix: options.unit_right ? ` ${options.unit_right}` : "" };
  if (options.stack) {
    layout.barmode = "stack";
    for (const trace of data) if (trace.type === "scatter") trace.stackgroup = trace.yaxis;
  }
  plot(element, data, layout, { onZoom: context.onZoom });
}

function stat(element, items, options, colors) {
  purge(element);
  const first = items[0];
  const value = reduceValue(first, options.reduce);
  const color = thresholdColor(value, options.thresholds, colors.fg);
  const wrapper = document.createElement("div");
  wrapper.className = "stat";
  const number = document.createElement("div");
  number.className = "stat-value";
  number.style.color = color;
  number.textContent = formatValue(value, options);
  const label = document.createElement("div");
  label.className = "stat-label";
  label.textContent = items.length > 1 ? first.name : "";
  const spark = document.createElement("div");
  spark.className = "stat-sparkline";
  const main = document.createElement("div");
  main.className = "stat-main";
  main.append(number, label);
  wrapper.append(main, spark);
  element.replaceChildren(wrapper);
  if (options.sparkline !== false && first.points.length > 1) {
    window.Plotly.newPlot(
      spark,
      [{ x: first.points.map((p) => p[0]), y: first.points.map((p) => p[1]), type: "scatter", mode: "lines", fill: "tozeroy", line: { color, width: 1 }, hoverinfo: "skip" }],
      { margin: { l: 0, r: 0, t: 0, b: 0 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", xaxis: { visible: false, fixedrange: true }, yaxis: { visible: false, fixedrange: true }, showlegend: false },
      { staticPlot: true, responsive: true },
    );
  }
}

function gauge(element, items, options, colors) {
  const value = reduceValue(items[0], options.reduce);
  const min = Number.isFinite(options.min) ? options.min : 0;
  const max = Number.isFinite(options.max) ? options.max : Math.max(100, Math.ceil((value ?? 0) * 1.2));
  const sorted = [...(options.thresholds ?? [])].sort((a, b) => (a.value ?? min) - (b.value ?? min));
  const steps = sorted.map((threshold, index) => ({
    range: [threshold.value ?? min, sorted[index + 1]?.value ?? max],
    color: threshold.color,
  }));
  plot(
    element,
    [{
      type: "indicator",
      mode: "gauge+number",
      value: value ?? 0,
      number: { suffix: options.unit ? ` ${options.unit}` : "", valueformat: Number.isInteger(options.decimals) ? `.${options.decimals}f` : "" },
      gauge: { axis: { range: [min, max] }, bar: { color: thresholdColor(value, options.thresholds, PALETTE[0]) }, steps: steps.map((step) => ({ ...step, color: `${step.color}` })), bgcolor: "rgba(0,0,0,0)" },
    }],
    { ...baseLayout(colors, { legend: false }), margin: { l: 24, r: 24, t: 16, b: 8 } },
  );
}

function bar(element, items, options, colors) {
  const horizontal = options.orientation === "horizontal";
  const names = items.map((item) => item.name);
  const values = items.map((item) => reduceValue(item, options.reduce));
  const barColors = values.map((value, index) => thresholdColor(value, options.thresholds, PALETTE[index % PALETTE.length]));
  const trace = horizontal
    ? { type: "bar", orientation: "h", y: names, x: values, marker: { color: barColors } }
    : { type: "bar", x: names, y: values, marker: { color: barColors } };
  plot(element, [trace], {
    ...baseLayout(colors, { legend: false }),
    xaxis: { gridcolor: colors.grid, automargin: true, fixedrange: true },
    yaxis: { gridcolor: colors.grid, automargin: true, fixedrange: true },
  });
}

function pie(element, items, options, colors) {
  plot(
    element,
    [{
      type: "pie",
      labels: items.map((item) => item.name),
      values: items.map((item) => reduceValue(item, options.reduce) ?? 0),
      hole: options.donut === false ? 0 : 0.45,
      textinfo: "percent",
      sort: false,
      marker: { colors: PALETTE },
    }],
    { ...baseLayout(colors), margin: { l: 8, r: 8, t: 8, b: 8 } },
  );
}

function table(element, items, options) {
  purge(element);
  const labelKeys = [...new Set(items.flatMap((item) => Object.keys(item.labels ?? {})))];
  const columns = [...(labelKeys.length ? labelKeys : ["series"]), "last", "time", "min", "max"];
  const rows = items.map((item) => {
    const values = item.points.map((point) => point[1]).filter((value) => value !== null && value !== undefined);
    const last = item.points[item.points.length - 1];
    const row = labelKeys.length ? labelKeys.map((key) => item.labels?.[key] ?? "") : [item.name];
    return [...row, lastValue(item), last ? last[0] : "", values.length ? Math.min(...values) : null, values.length ? Math.max(...values) : null];
  });
  const state = element._sort ?? { column: labelKeys.length || 1, descending: true };
  const numericFrom = columns.length - 4;
  const sorted = [...rows].sort((a, b) => {
    const x = a[state.column];
    const y = b[state.column];
    const order = typeof x === "number" && typeof y === "number" ? x - y : String(x ?? "").localeCompare(String(y ?? ""), undefined, { numeric: true });
    return state.descending ? -order : order;
  });
  const tableElement = document.createElement("table");
  tableElement.className = "panel-table";
  const head = tableElement.createTHead().insertRow();
  columns.forEach((column, index) => {
    const cell = document.createElement("th");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link sort";
    button.textContent = column + (state.column === index ? (state.descending ? " ▼" : " ▲") : "");
    cell.setAttribute("aria-sort", state.column === index ? (state.descending ? "descending" : "ascending") : "none");
    button.addEventListener("click", () => {
      element._sort = { column: index, descending: state.column === index ? !state.descending : index >= numericFrom };
      table(element, items, options);
    });
    cell.append(button);
    head.append(cell);
  });
  const body = tableElement.createTBody();
  for (const row of sorted) {
    const tr = body.insertRow();
    row.forEach((value, index) => {
      const cell = tr.insertCell();
      if (index === numericFrom || index >= numericFrom + 2) {
        cell.textContent = formatValue(value, options);
        cell.className = "number";
      } else if (index === numericFrom + 1) {
        cell.textContent = value ? new Date(value).toLocaleString() : "";
      } else {
        cell.textContent = value;
      }
    });
  }
  const wrapper = document.createElement("div");
  wrapper.className = "table-scroll";
  wrapper.append(tableElement);
  element.replaceChildren(wrapper);
}

function heatmap(element, items, options, colors, context) {
  const times = [...new Set(items.flatMap((item) => item.points.map((point) => point[0])))].sort((a, b) => Date.parse(a) - Date.parse(b));
  const index = new Map(times.map((time, position) => [Date.parse(time), position]));
  const z = items.map((item) => {
    const row = new Array(times.length).fill(null);
    for (const [time, value] of item.points) row[index.get(Date.parse(time))] = value;
    return row;
  });
  plot(
    element,
    [{ type: "heatmap", x: times, y: items.map((item) => item.name), z, colorscale: options.colorscale ?? "Viridis", hoverongaps: false, colorbar: { thickness: 10, ticksuffix: options.unit ? ` ${options.unit}` : "" } }],
    { ...baseLayout(colors, { legend: false }), xaxis: timeAxis(colors, context), yaxis: { automargin: true, fixedrange: true }, dragmode: "zoom" },
    { onZoom: context.onZoom },
  );
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

function stateTimeline(element, items, options, colors, context) {
  const describe = (value) => stateFor(value, options.states) ?? { label: formatValue(value, { decimals: options.decimals ?? 0 }), color: null };
  const segmentsByState = new Map();
  const endOfRange = context.range ? context.range.end.getTime() : Date.now();
  for (const item of items) {
    const points = item.points.filter((point) => point[1] !== null && point[1] !== undefined);
    for (let position = 0; position < points.length; position += 1) {
      const [time, value] = points[position];
      let next = position + 1;
      while (next < points.length && points[next][1] === value) next += 1;
      const start = Date.parse(time);
      const end = next < points.length ? Date.parse(points[next][0]) : endOfRange;
      const state = describe(value);
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
