// What a panel says about numbers: reductions (calculation over time, combination across series), formatting,
// thresholds, value mappings and series names (legend templates such as "{facility}").

export const CALCULATIONS = [
  ["last_not_null", "Last (not null)"],
  ["last", "Last"],
  ["first", "First"],
  ["mean", "Mean"],
  ["sum", "Total (sum)"],
  ["min", "Min"],
  ["max", "Max"],
  ["count", "Count of values"],
  ["delta", "Delta (last − first)"],
  ["range", "Range (max − min)"],
];
export const COMBINATIONS = [
  ["sum", "Sum of series"],
  ["mean", "Mean of series"],
  ["min", "Min of series"],
  ["max", "Max of series"],
  ["none", "One per series"],
];
// Panels whose numbers the server reduces (POST /api/v1/query with "reduce").
export const REDUCED_TYPES = new Set(["stat", "gauge", "bargauge"]);
const LEGACY_REDUCE = { avg: "mean", last: "last_not_null", first: "first", sum: "sum", min: "min", max: "max" };
const SUMMING = new Set(["sum", "count"]);
// One value per series unless the panel combines them (a slice, a bar, a row each); the same list as
// PER_SERIES_PANEL_TYPES in apps/reporting/content.py.
const PER_SERIES_TYPES = new Set(["bargauge", "bar", "pie", "table"]);

// The reduction a panel asks for: what the editor chose, else what the query implies (counts and sums add up).
export function panelReduce(panel) {
  const options = panel.options ?? {};
  const spec = panel.queries?.[0]?.query ?? {};
  const summing = SUMMING.has(spec.aggregation) || /(^|\.)count$/.test(spec.metric ?? "");
  const calculation = options.calculation ?? LEGACY_REDUCE[options.reduce] ?? (summing ? "sum" : "last_not_null");
  let combination = options.combination;
  if (!combination) {
    if (PER_SERIES_TYPES.has(panel.type)) combination = "none";
    else if (summing) combination = "sum";
    else if (spec.aggregation === "max" || spec.aggregation === "min") combination = spec.aggregation;
    else combination = "mean";
  }
  return { calculation, combination };
}

// The same calculation the query API makes, over one series' points (the sparkline and the legend use it).
export function calculate(points, calculation) {
  const all = (points ?? []).map((point) => point[1]);
  const values = all.filter((value) => value !== null && value !== undefined);
  if (calculation === "last") return all.length ? all[all.length - 1] ?? null : null;
  if (calculation === "count") return values.length;
  if (!values.length) return null;
  switch (calculation) {
    case "first":
      return values[0];
    case "mean":
      return values.reduce((total, value) => total + value, 0) / values.length;
    case "sum":
      return values.reduce((total, value) => total + value, 0);
    case "min":
      return Math.min(...values);
    case "max":
      return Math.max(...values);
    case "delta":
      return values[values.length - 1] - values[0];
    case "range":
      return Math.max(...values) - Math.min(...values);
    default:
      return values[values.length - 1];
  }
}

export function combine(values, combination) {
  const present = values.filter((value) => value !== null && value !== undefined);
  if (!present.length) return null;
  if (combination === "sum") return present.reduce((total, value) => total + value, 0);
  if (combination === "min") return Math.min(...present);
  if (combination === "max") return Math.max(...present);
  return present.reduce((total, value) => total + value, 0) / present.length;
}

// One line of points from many series, combined per timestamp (a stat's sparkline).
export function combinedPoints(series, combination) {
  const byTime = new Map();
  for (const item of series) {
    for (const [time, value] of item.points ?? []) {
      const key = Date.parse(time);
      if (!byTime.has(key)) byTime.set(key, [time, []]);
      byTime.get(key)[1].push(value);
    }
  }
  return [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([, [time, values]]) => [time, combine(values, combination === "none" ? "mean" : combination)]);
}

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

// value_mappings: [{type: "value", value, text, color?} | {type: "range", from, to, text, color?}]; the first match wins.
export function mappedValue(value, mappings) {
  if (value === null || value === undefined) return null;
  for (const mapping of mappings ?? []) {
    if (mapping.type === "range") {
      const above = mapping.from === null || mapping.from === undefined || value >= mapping.from;
      const below = mapping.to === null || mapping.to === undefined || value <= mapping.to;
      if (above && below) return mapping;
    } else if (Number(mapping.value) === value) {
      return mapping;
    }
  }
  return null;
}

// The text and colour a person sees for a value: a mapping first, then the thresholds.
export function displayValue(value, options, fallbackColor) {
  const mapping = mappedValue(value, options.value_mappings);
  return {
    text: mapping?.text ?? formatValue(value, options),
    color: mapping?.color || thresholdColor(value, options.thresholds, fallbackColor),
  };
}

export function labelsText(labels) {
  return Object.entries(labels ?? {}).map(([key, value]) => `${key}=${value}`).join(", ");
}

// A legend like "pressure {facility}" with each {label} replaced by the series' value; unknown labels stay empty.
export function legendText(template, labels) {
  return String(template).replace(/\{\{?\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}?\}/g, (_, key) => labels?.[key] ?? "");
}

// A series' display name: its query's legend (a template), else its labels, prefixed by the query when several.
// A plain legend names a query's only series; with several series, their labels follow it.
export function seriesDisplayName(result, labels, { several = false, count = 1 } = {}) {
  if (result.legend) {
    const text = legendText(result.legend, labels).trim();
    const templated = /\{/.test(result.legend);
    const extra = labelsText(labels);
    return templated || !extra || count <= 1 ? text : `${text} ${extra}`;
  }
  const base = labelsText(labels) || result.metric || result.ref || "value";
  return several ? `${result.ref}: ${base}` : base;
}
