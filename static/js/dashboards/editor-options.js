// The panel editor's option fields: reduction, legend, axes, thresholds (colour pickers), value mappings,
// overrides and the per-type settings. Each builder edits `options` in place and calls `changed()`.

import { CALCULATIONS, COMBINATIONS, panelReduce } from "./values.js";

const STYLES = [["lines", "Lines"], ["areas", "Areas"], ["bars", "Bars"]];
const LEGEND_VALUES = ["last", "mean", "min", "max", "sum"];
const REDUCING = new Set(["stat", "gauge", "bargauge", "bar", "pie", "table"]);
const AXIS_TYPES = new Set(["timeseries", "xy"]);

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export function field(labelText, control, help) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return element("div", { class: "field" }, element("label", { for: id, text: labelText }), control, help ? element("small", { class: "help", text: help }) : null);
}

export function select(options, value, attributes = {}) {
  const node = element("select", attributes);
  for (const option of options) {
    const [optionValue, label] = Array.isArray(option) ? option : [option, option];
    node.append(element("option", { value: optionValue, text: label, selected: String(optionValue) === String(value ?? "") }));
  }
  return node;
}

function checkbox(labelText, checked, name, onChange) {
  const box = element("input", { type: "checkbox", name, checked: Boolean(checked) });
  box.addEventListener("change", () => onChange(box.checked));
  return element("label", { class: "inline-check" }, box, ` ${labelText}`);
}

function numberOrUndefined(text) {
  if (text === "" || text === null || text === undefined) return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

// A colour input needs #rrggbb; named colours from older documents show as the nearest we know.
const NAMED = { green: "#56a64b", orange: "#e0752d", red: "#c4162a", blue: "#3274d9", yellow: "#d6a21d", grey: "#888888", gray: "#888888", purple: "#8f3bb8" };
function hexColor(color) {
  if (/^#[0-9a-f]{6}$/i.test(color ?? "")) return color;
  if (/^#[0-9a-f]{3}$/i.test(color ?? "")) return `#${[...color.slice(1)].map((c) => c + c).join("")}`;
  return NAMED[String(color).toLowerCase()] ?? "#3274d9";
}

function section(title, ...children) {
  return element("fieldset", { class: "option-section" }, element("legend", { text: title }), ...children);
}

function reductionSection(panel, changed) {
  const options = panel.options;
  const chosen = panelReduce(panel);
  const calculation = select(CALCULATIONS, chosen.calculation, { name: "calculation" });
  const combination = select(COMBINATIONS, chosen.combination, { name: "combination" });
  calculation.addEventListener("change", () => {
    options.calculation = calculation.value;
    options.combination = combination.value;
    delete options.reduce;
    changed();
  });
  combination.addEventListener("change", () => {
    options.calculation = calculation.value;
    options.combination = combination.value;
    delete options.reduce;
    changed();
  });
  return section(
    "Value",
    element("div", { class: "query-row" }, field("Calculation (over time)", calculation), field("Combination (across series)", combination)),
    element("small", { class: "help", text: "The server reduces each series over the range, then combines the series; counts and sums add up by default." }),
  );
}

function legendSection(options, changed) {
  const mode = select([["list", "List"], ["table", "Table"]], options.legend_mode ?? "list", { name: "legend_mode" });
  mode.addEventListener("change", () => {
    options.legend_mode = mode.value;
    changed();
  });
  const placement = select([["bottom", "Bottom"], ["right", "Right"]], options.legend_placement ?? "bottom", { name: "legend_placement" });
  placement.addEventListener("change", () => {
    options.legend_placement = placement.value;
    changed();
  });
  const values = element("div", { class: "legend-values" }, element("span", { class: "help", text: "Values: " }));
  for (const value of LEGEND_VALUES) {
    values.append(checkbox(value, (options.legend_values ?? []).includes(value), `legend_value_${value}`, (checked) => {
      const list = new Set(options.legend_values ?? []);
      checked ? list.add(value) : list.delete(value);
      options.legend_values = LEGEND_VALUES.filter((item) => list.has(item));
      if (!options.legend_values.length) delete options.legend_values;
      changed();
    }));
  }
  return section(
    "Legend",
    checkbox("Show legend", options.legend !== false, "legend", (checked) => {
      options.legend = checked;
      changed();
    }),
    element("div", { class: "query-row" }, field("Mode", mode), field("Placement", placement)),
    values,
  );
}

function axisFields(options, side, changed) {
  const suffix = side === "right" ? "_right" : "";
  const input = (name, attributes, parse) => {
    const control = element("input", { name: `${name}${suffix}`, value: options[`${name}${suffix}`] ?? "", ...attributes });
    control.addEventListener("input", () => {
      options[`${name}${suffix}`] = parse(control.value);
      changed();
    });
    return control;
  };
  const decimalsParse = (value) => (value === "" ? undefined : Math.max(0, Math.min(10, Number.parseInt(value, 10) || 0)));
  return element(
    "div",
    { class: "query-row axis-row" },
    field(side === "right" ? "Right unit" : "Unit", input("unit", { type: "text", placeholder: "°C, %, req/s", maxlength: "20" }, (value) => value.trim() || undefined)),
    field("Decimals", input("decimals", { type: "number", min: "0", max: "10" }, decimalsParse)),
    field("Min", input("min", { type: "number", step: "any" }, numberOrUndefined)),
    field("Max", input("max", { type: "number", step: "any" }, numberOrUndefined)),
  );
}

// Thresholds as rows: a base colour, then value + colour pairs (kept sorted on save).
function thresholdsSection(options, changed, rerender) {
  options.thresholds ??= [];
  const rows = options.thresholds.map((threshold, index) => {
    const value = element("input", { type: "number", step: "any", name: "threshold_value", value: threshold.value ?? "", placeholder: "base", disabled: index === 0 && threshold.value === null, "aria-label": "Threshold value" });
    value.addEventListener("change", () => {
      threshold.value = numberOrUndefined(value.value) ?? null;
      options.thresholds.sort((a, b) => (a.value ?? -Infinity) - (b.value ?? -Infinity));
      changed();
      rerender();
    });
    const color = element("input", { type: "color", name: "threshold_color", value: hexColor(threshold.color), "aria-label": "Threshold colour" });
    color.addEventListener("input", () => {
      threshold.color = color.value;
      changed();
    });
    const remove = element("button", { type: "button", class: "link danger", text: "Remove", "aria-label": "Remove threshold" });
    remove.addEventListener("click", () => {
      options.thresholds.splice(index, 1);
      changed();
      rerender();
    });
    return element("div", { class: "threshold-row" }, color, value, remove);
  });
  const add = element("button", { type: "button", class: "link add-threshold", text: "+ Add threshold" });
  add.addEventListener("click", () => {
    const values = options.thresholds.map((item) => item.value).filter((value) => value !== null);
    if (!options.thresholds.length) options.thresholds.push({ value: null, color: "#56a64b" });
    else options.thresholds.push({ value: values.length ? Math.max(...values) + 10 : 80, color: "#c4162a" });
    changed();
    rerender();
  });
  return section("Thresholds", ...rows, add, element("small", { class: "help", text: "A value takes the colour of the highest threshold at or below it; the first row is the base colour." }));
}

function mappingsSection(options, changed, rerender) {
  options.value_mappings ??= [];
  const rows = options.value_mappings.map((mapping, index) => {
    const type = select([["value", "Value"], ["range", "Range"]], mapping.type ?? "value", { name: "mapping_type", "aria-label": "Mapping type" });
    type.addEventListener("change", () => {
      mapping.type = type.value;
      changed();
      rerender();
    });
    const number = (key, placeholder) => {
      const control = element("input", { type: "number", step: "any", name: `mapping_${key}`, value: mapping[key] ?? "", placeholder, "aria-label": placeholder });
      control.addEventListener("input", () => {
        mapping[key] = numberOrUndefined(control.value) ?? null;
        changed();
      });
      return control;
    };
    const text = element("input", { type: "text", name: "mapping_text", value: mapping.text ?? "", placeholder: "shows as", maxlength: "50", "aria-label": "Text shown" });
    text.addEventListener("input", () => {
      mapping.text = text.value;
      changed();
    });
    const color = element("input", { type: "color", name: "mapping_color", value: hexColor(mapping.color ?? "#3274d9"), "aria-label": "Colour" });
    color.addEventListener("input", () => {
      mapping.color = color.value;
      changed();
    });
    const remove = element("button", { type: "button", class: "link danger", text: "Remove", "aria-label": "Remove mapping" });
    remove.addEventListener("click", () => {
      options.value_mappings.splice(index, 1);
      changed();
      rerender();
    });
    const operands = mapping.type === "range" ? [number("from", "from"), number("to", "to")] : [number("value", "value")];
    return element("div", { class: "mapping-row" }, type, ...operands, element("span", { text: "→" }), text, color, remove);
  });
  const add = element("button", { type: "button", class: "link", text: "+ Add value mapping" });
  add.addEventListener("click", () => {
    options.value_mappings.push({ type: "value", value: 0, text: "off" });
    changed();
    rerender();
  });
  return section("Value mappings", ...rows, add);
}

// Overrides: a series (by its display name or query ref) gets its own colour, axis, style or is hidden.
function overridesSection(options, changed, rerender, seriesNames) {
  options.overrides ??= [];
  const listId = `series-names-${Math.random().toString(36).slice(2, 8)}`;
  const names = element("datalist", { id: listId }, ...seriesNames().map((name) => element("option", { value: name })));
  const rows = options.overrides.map((override, index) => {
    const match = element("input", { type: "text", name: "override_match", value: override.match ?? "", list: listId, placeholder: "series name or query (A)", "aria-label": "Series" });
    match.addEventListener("input", () => {
      override.match = match.value;
      changed();
    });
    const color = element("input", { type: "color", name: "override_color", value: hexColor(override.color ?? "#e0752d"), "aria-label": "Colour" });
    color.addEventListener("input", () => {
      override.color = color.value;
      changed();
    });
    const style = select([["", "Style: panel's"], ...STYLES], override.style ?? "", { name: "override_style", "aria-label": "Style" });
    style.addEventListener("change", () => {
      override.style = style.value || undefined;
      changed();
    });
    const axis = select([["", "Axis: query's"], ["left", "Left"], ["right", "Right"]], override.axis ?? "", { name: "override_axis", "aria-label": "Axis" });
    axis.addEventListener("change", () => {
      override.axis = axis.value || undefined;
      changed();
    });
    const hide = checkbox("hide", override.hide, "override_hide", (checked) => {
      override.hide = checked || undefined;
      changed();
    });
    const remove = element("button", { type: "button", class: "link danger", text: "Remove", "aria-label": "Remove override" });
    remove.addEventListener("click", () => {
      options.overrides.splice(index, 1);
      changed();
      rerender();
    });
    return element("div", { class: "override-row" }, match, color, style, axis, hide, remove);
  });
  const add = element("button", { type: "button", class: "link", text: "+ Add override" });
  add.addEventListener("click", () => {
    options.overrides.push({ match: seriesNames()[0] ?? "A", color: "#e0752d" });
    changed();
    rerender();
  });
  return section("Overrides", names, ...rows, add);
}

// Every option field of the panel's type (after title and type).
export function optionFields(panel, { changed, rerender, seriesNames }) {
  const options = panel.options;
  const type = panel.type;
  const rows = [];
  if (REDUCING.has(type)) rows.push(reductionSection(panel, changed));
  if (type === "timeseries") {
    const style = select(STYLES, options.style ?? "lines", { name: "style" });
    style.addEventListener("change", () => {
      options.style = style.value;
      changed();
    });
    rows.push(element("div", { class: "query-row" }, field("Draw as", style), element("div", { class: "field checkbox" },
      checkbox("Stack series", options.stack, "stack", (checked) => {
        options.stack = checked;
        changed();
      }),
      checkbox("Threshold lines", options.threshold_lines, "threshold_lines", (checked) => {
        options.threshold_lines = checked;
        changed();
      }))));
  }
  if (type === "table") {
    const mode = select([["join", "Join by labels (a column per query)"], ["series", "A row per series"]], options.table_mode ?? "join", { name: "table_mode" });
    mode.addEventListener("change", () => {
      options.table_mode = mode.value;
      changed();
    });
    rows.push(field("Rows", mode));
  }
  if (type === "histogram") {
    const buckets = element("input", { type: "number", name: "buckets", min: "1", max: "200", value: options.buckets ?? "" });
    buckets.addEventListener("input", () => {
      const value = Number.parseInt(buckets.value, 10);
      options.buckets = Number.isInteger(value) && value > 0 ? Math.min(value, 200) : undefined;
      changed();
    });
    rows.push(field("Buckets", buckets, "How many bins; empty lets the chart choose."));
  }
  if (type === "bar" || type === "bargauge") {
    const orientation = select([["vertical", "Vertical"], ["horizontal", "Horizontal"]], options.orientation ?? (type === "bargauge" ? "horizontal" : "vertical"), { name: "orientation" });
    orientation.addEventListener("change", () => {
      options.orientation = orientation.value;
      changed();
    });
    if (type === "bar") rows.push(field("Orientation", orientation));
  }
  rows.push(section(AXIS_TYPES.has(type) ? "Axes" : "Standard options", axisFields(options, "left", changed), type === "timeseries" || type === "xy" ? axisFields(options, "right", changed) : null));
  if (["timeseries", "pie", "histogram", "xy"].includes(type)) rows.push(legendSection(options, changed));
  if (type === "stat") {
    rows.push(element("div", { class: "field checkbox" }, checkbox("Sparkline", options.sparkline !== false, "sparkline", (checked) => {
      options.sparkline = checked;
      changed();
    })));
  }
  if (type === "pie") {
    rows.push(element("div", { class: "field checkbox" }, checkbox("Donut", options.donut !== false, "donut", (checked) => {
      options.donut = checked;
      changed();
    })));
  }
  if (type !== "heatmap" && type !== "histogram" && type !== "xy") rows.push(thresholdsSection(options, changed, rerender));
  if (["stat", "gauge", "bargauge", "table", "state_timeline", "bar"].includes(type)) rows.push(mappingsSection(options, changed, rerender));
  if (["timeseries", "histogram"].includes(type)) rows.push(overridesSection(options, changed, rerender, seriesNames));
  return rows;
}
