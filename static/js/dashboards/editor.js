// The panel editor: title, type and style options, and a visual query builder per query
// (source → metric → label filters → aggregation → bucket → group by) with a live preview.

import { get, query as queryString, results as listResults } from "./api.js";
import { element, field, optionFields, select } from "./editor-options.js";
import { renderInspector } from "./inspector.js";
import { ALERT_STATES, alertListStates } from "./alert-list.js";
import { PANEL_TYPES, QUERYLESS_TYPES } from "./panels.js";
import { seriesDisplayName } from "./values.js";

const AGGREGATIONS = ["avg", "sum", "count", "min", "max", "last", "p50", "p75", "p90", "p95", "p99", "raw"];
const BUCKETS = ["auto", "1s", "10s", "30s", "1m", "5m", "15m", "1h", "6h", "1d"];
const REFS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

const cache = new Map();
function cachedGet(url) {
  if (!cache.has(url)) cache.set(url, get(url).catch((error) => { cache.delete(url); throw error; }));
  return cache.get(url);
}

// Pickers list the first PICKER_LIMIT names or values; the API says when more exist (`truncated`).
const PICKER_LIMIT = 10000;
function pickerList(data, key) {
  const list = data[key] ?? [];
  list.truncated = Boolean(data.truncated);
  return list;
}

export const catalog = {
  sources: () => cachedGet("/api/v1/sources/?limit=500").then((data) => listResults(data)),
  metrics: (source) =>
    cachedGet(`/api/v1/series/metrics${queryString({ source, limit: PICKER_LIMIT })}`).then((data) => pickerList(data, "metrics")),
  labelValues: (label, { source, metric } = {}) =>
    cachedGet(`/api/v1/series/label-values${queryString({ label, source, metric, limit: PICKER_LIMIT })}`).then((data) => pickerList(data, "values")),
  // Every label name of the metric's series (a page of series could miss a name only some carry).
  labelKeys: (source, metric) =>
    cachedGet(`/api/v1/series/label-keys${queryString({ source, metric, limit: PICKER_LIMIT })}`).then((data) => pickerList(data, "labels")),
};

// "50:#e0752d, 80:#c4162a" <-> [{value: 50, color: "#e0752d"}, ...]; a bare colour is the base colour.
export function thresholdsParse(text) {
  return String(text ?? "")
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const [value, color] = part.includes(":") ? part.split(":") : [null, part];
      return { value: value === null || value.trim() === "" ? null : Number(value), color: color.trim() };
    })
    .filter((item) => item.color && (item.value === null || Number.isFinite(item.value)))
    .sort((a, b) => (a.value ?? -Infinity) - (b.value ?? -Infinity));
}

export function thresholdsFormat(thresholds) {
  return (thresholds ?? []).map((item) => (item.value === null || item.value === undefined ? item.color : `${item.value}:${item.color}`)).join(", ");
}

// "0:off:#888888, 1:on:#56a64b" <-> {"0": {label, color}, "1": {label, color}}
export function statesParse(text) {
  const states = {};
  for (const part of String(text ?? "").split(",")) {
    const [value, label, color] = part.trim().split(":").map((piece) => piece.trim());
    if (value === undefined || value === "" || !Number.isFinite(Number(value)) || !label) continue;
    states[String(Number(value))] = { label, color: color || "grey" };
  }
  return states;
}

export function statesFormat(states) {
  return Object.entries(states ?? {})
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([value, state]) => `${value}:${state.label}:${state.color}`)
    .join(", ");
}

// Drops what the API would refuse: empty filters, a source of "any", queries of text panels.
export function panelClean(panel) {
  const clean = structuredClone(panel);
  if (QUERYLESS_TYPES.has(clean.type)) clean.queries = [];
  const empty = (value) => value === undefined || value === null || value === "" || (Array.isArray(value) && !value.length);
  for (const item of clean.queries ?? []) {
    const spec = item.query;
    if (!spec.source) delete spec.source;
    for (const [label, condition] of Object.entries(spec.filters ?? {})) {
      const operand = condition && typeof condition === "object" && !Array.isArray(condition) ? Object.values(condition)[0] : condition;
      if (empty(operand)) delete spec.filters[label];
    }
    if (!spec.group_by?.length) delete spec.group_by;
    for (const key of ["legend", "unit"]) if (empty(item[key])) delete item[key];
  }
  for (const [key, value] of Object.entries(clean.options ?? {})) if (empty(value)) delete clean.options[key];
  return clean;
}

export class PanelEditor {
  // preview(panel, container) draws the panel being edited; variables lists the dashboard's variable names.
  constructor(dialog, { preview, variables = () => [] }) {
    this.dialog = dialog;
    this.preview = preview;
    this.variables = variables;
    this.form = dialog.querySelector("form");
    this.fields = dialog.querySelector(".editor-fields");
    this.queriesBox = dialog.querySelector(".editor-queries");
    this.previewBox = dialog.querySelector(".editor-preview");
    this.errorBox = dialog.querySelector(".editor-error");
    this.previewTimer = null;
    dialog.querySelector(".editor-add-query").addEventListener("click", () => {
      const used = new Set(this.panel.queries.map((item) => item.ref));
      const ref = [...REFS].find((letter) => !used.has(letter)) ?? `Q${this.panel.queries.length + 1}`;
      const previous = this.panel.queries[this.panel.queries.length - 1]?.query ?? {};
      this.panel.queries.push({ ref, axis: "left", query: { source: previous.source, metric: "", filters: {}, aggregation: "avg", bucket: "auto", group_by: [] } });
      this.renderQueries();
      this.schedulePreview();
    });
    for (const button of dialog.querySelectorAll(".editor-cancel")) button.addEventListener("click", () => dialog.close("cancel"));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const problem = this.validate();
      if (problem) {
        this.showError(problem);
        return;
      }
      dialog.close("apply");
      this.resolve?.(panelClean(this.panel));
      this.resolve = null;
    });
    dialog.addEventListener("close", () => {
      clearTimeout(this.previewTimer);
      if (this.resolve) this.resolve(null);
      this.resolve = null;
    });
  }

  // Resolves with the edited panel, or null when cancelled.
  open(panel) {
    this.panel = structuredClone(panel);
    this.panel.options ??= {};
    this.panel.queries ??= [];
    this.showError("");
    this.renderFields();
    this.renderQueries();
    this.dialog.showModal();
    this.dialog.querySelector("input, select, textarea")?.focus();
    this.schedulePreview(0);
    return new Promise((resolve) => {
      this.resolve = resolve;
    });
  }

  showError(text) {
    this.errorBox.textContent = text;
    this.errorBox.hidden = !text;
  }

  validate() {
    if (QUERYLESS_TYPES.has(this.panel.type)) return "";
    const missing = this.panel.queries.find((item) => !item.query.metric);
    return missing ? `Query ${missing.ref}: choose a metric.` : "";
  }

  changed() {
    this.schedulePreview();
  }

  schedulePreview(delay = 400) {
    clearTimeout(this.previewTimer);
    this.previewTimer = setTimeout(async () => {
      const entries = await this.preview(panelClean(this.panel), this.previewBox);
      this.lastInspect = entries ?? [];
      renderInspector(this.dialog.querySelector(".editor-inspect .inspector-body"), this.lastInspect);
    }, delay);
  }

  // Display names of the series the preview last drew (override suggestions).
  seriesNames() {
    const names = new Set(this.panel.queries.map((item) => item.ref));
    const several = this.panel.queries.length > 1;
    for (const entry of this.lastInspect ?? []) {
      const item = this.panel.queries.find((query) => query.ref === entry.ref);
      for (const series of entry.response?.series ?? []) names.add(seriesDisplayName({ ...item, metric: item?.query?.metric }, series.labels, { several }));
    }
    return [...names];
  }

  renderFields() {
    const panel = this.panel;
    const options = panel.options;
    const bindText = (control, apply) => {
      control.addEventListener("input", () => {
        apply(control.value);
        this.changed();
      });
      return control;
    };
    const title = bindText(element("input", { type: "text", name: "title", value: panel.title ?? "", required: true, maxlength: "200" }), (value) => (panel.title = value));
    const type = select(PANEL_TYPES, panel.type, { name: "type" });
    type.addEventListener("change", () => {
      panel.type = type.value;
      this.renderFields();
      this.renderQueries();
      this.changed();
    });
    const rows = [element("div", { class: "query-row" }, field("Title", title), field("Type", type))];
    if (panel.type === "text") {
      const markdown = bindText(element("textarea", { name: "markdown", rows: "8" }), (value) => (options.markdown = value));
      markdown.value = options.markdown ?? "";
      rows.push(field("Text (markdown)", markdown, "Headings (#), **bold**, *italics*, lists (- item) and [links](https://…). HTML is shown as text."));
    } else if (panel.type === "alertlist") {
      rows.push(...this.alertListFields());
    } else {
      rows.push(...optionFields(panel, { changed: () => this.changed(), rerender: () => this.renderFields(), seriesNames: () => this.seriesNames() }));
      if (panel.type === "state_timeline") {
        const states = bindText(element("input", { type: "text", name: "states", value: statesFormat(options.states), placeholder: "0:off:#888888, 1:on:#56a64b" }), (value) => (options.states = statesParse(value)));
        rows.push(field("States", states, "value:label:colour, comma separated."));
      }
    }
    this.fields.replaceChildren(...rows);
    this.dialog.querySelector(".editor-query-section").hidden = QUERYLESS_TYPES.has(panel.type);
  }

  // An alert list's options: which states it shows, and how many instances at most.
  alertListFields() {
    const options = this.panel.options;
    const chosen = new Set(alertListStates(this.panel));
    const boxes = ALERT_STATES.map(([state, label]) => {
      const box = element("input", { type: "checkbox", name: "alert_states", value: state, checked: chosen.has(state) });
      box.addEventListener("change", () => {
        options.alert_states = [...this.fields.querySelectorAll("input[name=alert_states]:checked")].map((input) => input.value);
        this.changed();
      });
      return element("label", { class: "inline-check" }, box, ` ${label}`);
    });
    const limit = element("input", { type: "number", name: "alert_limit", min: "1", max: "100", value: options.alert_limit ?? 50 });
    limit.addEventListener("input", () => {
      options.alert_limit = limit.value ? Math.min(100, Math.max(1, Number(limit.value))) : undefined;
      this.changed();
    });
    return [
      element("fieldset", { class: "option-section" }, element("legend", { text: "Show alerts that are" }), ...boxes),
      field("At most", limit, "Instances of the rules you may read, most urgent first."),
    ];
  }

  renderQueries() {
    if (!QUERYLESS_TYPES.has(this.panel.type) && !this.panel.queries.length) {
      this.panel.queries.push({ ref: "A", axis: "left", query: { metric: "", filters: {}, aggregation: "avg", bucket: "auto", group_by: [] } });
    }
    this.queriesBox.replaceChildren(...this.panel.queries.map((item, index) => this.queryBuilder(item, index)));
  }

  queryBuilder(item, index) {
    const spec = item.query;
    spec.filters ??= {};
    spec.group_by ??= [];
    const box = element("fieldset", { class: "query-builder", "data-ref": item.ref });
    box.append(element("legend", { text: `Query ${item.ref}` }));
    const sourceSelect = select([["", "Any source"]], spec.source ?? "", { name: "source" });
    // A typed name is taken as it is (a metric with no data yet is fine); the list only suggests.
    const metricList = element("datalist", { id: `metrics-${item.ref}-${Math.random().toString(36).slice(2, 8)}` });
    const metricSelect = element("input", { type: "text", name: "metric", value: spec.metric ?? "", list: metricList.id, required: true, placeholder: "Type or choose a metric", autocomplete: "off", spellcheck: "false" });
    const filtersBox = element("div", { class: "filters" });
    const groupBox = element("div", { class: "group-by" });
    const aggregation = select(AGGREGATIONS, spec.aggregation ?? "avg", { name: "aggregation" });
    const bucket = select(BUCKETS, spec.bucket ?? "auto", { name: "bucket" });
    const status = element("small", { class: "help query-status", "aria-live": "polite" });

    catalog.sources().then((sources) => {
      for (const source of sources) sourceSelect.append(element("option", { value: source.slug, text: source.name ? `${source.name} (${source.slug})` : source.slug, selected: source.slug === spec.source }));
    }).catch((error) => (status.textContent = `Sources: ${error.message}`));

    const loadMetrics = () => {
      catalog.metrics(spec.source || undefined).then((metrics) => {
        metricList.replaceChildren(...metrics.map((metric) => element("option", { value: metric })));
        status.textContent = metrics.truncated ? `Only the first ${PICKER_LIMIT.toLocaleString()} metrics are suggested; pick a source to narrow them.` : metrics.length ? "" : "No metrics yet: type the name your data will use.";
      }).catch((error) => (status.textContent = `Metrics: ${error.message}`));
    };

    const renderLabels = () => {
      filtersBox.replaceChildren();
      groupBox.replaceChildren();
      if (!spec.metric) return;
      catalog.labelKeys(spec.source || undefined, spec.metric).then((keys) => {
        const allKeys = [...new Set([...keys, ...Object.keys(spec.filters), ...spec.group_by])];
        for (const [label, condition] of Object.entries(spec.filters)) filtersBox.append(this.filterRow(spec, label, condition, allKeys, renderLabels));
        const addFilter = element("button", { type: "button", class: "link", text: "+ Add label filter" });
        addFilter.addEventListener("click", () => {
          const free = allKeys.find((key) => !(key in spec.filters));
          if (!free) {
            status.textContent = "Every label already has a filter.";
            return;
          }
          spec.filters[free] = [];
          renderLabels();
        });
        filtersBox.append(addFilter);
        if (allKeys.length) groupBox.append(element("span", { class: "help", text: "Group by: " }));
        for (const key of allKeys) {
          const box = element("input", { type: "checkbox", name: `group_by_${key}`, value: key, checked: spec.group_by.includes(key) });
          box.addEventListener("change", () => {
            spec.group_by = box.checked ? [...spec.group_by, key] : spec.group_by.filter((name) => name !== key);
            this.changed();
          });
          groupBox.append(element("label", { class: "inline-check" }, box, ` ${key}`));
        }
      }).catch((error) => (status.textContent = `Labels: ${error.message}`));
    };

    sourceSelect.addEventListener("change", () => {
      spec.source = sourceSelect.value || undefined;
      loadMetrics();
      renderLabels();
      this.changed();
    });
    metricSelect.addEventListener("input", () => {
      spec.metric = metricSelect.value.trim();
      this.changed();
    });
    metricSelect.addEventListener("change", () => {
      spec.metric = metricSelect.value.trim();
      renderLabels();
      this.changed();
    });
    const legend = element("input", { type: "text", name: "query_legend", value: item.legend ?? "", placeholder: "e.g. {device} or revenue", maxlength: "200" });
    legend.addEventListener("input", () => {
      item.legend = legend.value || undefined;
      this.changed();
    });
    const unit = element("input", { type: "text", name: "query_unit", value: item.unit ?? "", placeholder: "kW", maxlength: "20" });
    unit.addEventListener("input", () => {
      item.unit = unit.value.trim() || undefined;
      this.changed();
    });
    aggregation.addEventListener("change", () => {
      spec.aggregation = aggregation.value;
      this.changed();
    });
    bucket.addEventListener("change", () => {
      spec.bucket = bucket.value;
      this.changed();
    });
    const axis = select([["left", "Left axis"], ["right", "Right axis"]], item.axis ?? "left", { name: "axis" });
    axis.addEventListener("change", () => {
      item.axis = axis.value;
      this.changed();
    });
    const remove = element("button", { type: "button", class: "danger small", text: "Remove query", disabled: this.panel.queries.length < 2 });
    remove.addEventListener("click", () => {
      this.panel.queries.splice(index, 1);
      this.renderQueries();
      this.changed();
    });
    box.append(
      element("div", { class: "query-row" }, field("Source", sourceSelect), field("Metric", metricSelect), metricList),
      filtersBox,
      element("div", { class: "query-row" }, field("Aggregation", aggregation), field("Bucket", bucket), this.panel.type === "timeseries" ? field("Axis", axis) : null),
      groupBox,
      element("div", { class: "query-row" }, field("Legend", legend, "{label} is replaced by the series' value."), field("Unit", unit)),
      element("div", { class: "query-row" }, remove, status),
    );
    loadMetrics();
    renderLabels();
    return box;
  }

  filterRow(spec, label, condition, keys, rerender) {
    const row = element("div", { class: "filter-row" });
    const parsed = filterParse(condition);
    const keySelect = select(keys, label, { name: "filter_label", "aria-label": "Label" });
    keySelect.addEventListener("change", () => {
      delete spec.filters[label];
      spec.filters[keySelect.value] = [];
      rerender();
      this.changed();
    });
    const operator = select([["=", "="], ["!=", "!="], ["=~", "=~ regex"]], parsed.operator, { name: "filter_operator", "aria-label": `Operator on ${label}` });
    const chosen = new Set(parsed.values.map(String));
    let valueControl;
    if (parsed.operator === "=~") {
      valueControl = element("input", { type: "text", name: "filter_regex", value: parsed.values[0] ?? "", placeholder: "f[12]|f5", "aria-label": `Pattern for ${label}` });
      valueControl.addEventListener("input", () => {
        spec.filters[label] = { regex: valueControl.value };
        this.changed();
      });
    } else {
      valueControl = element("select", { name: "filter_values", multiple: true, size: "4", "aria-label": `Values of ${label}` });
      for (const name of this.variables()) {
        valueControl.append(element("option", { value: `$${name}`, text: `$${name} (variable)`, selected: chosen.has(`$${name}`) }));
      }
      catalog.labelValues(label, { source: spec.source || undefined, metric: spec.metric }).then((list) => {
        for (const value of list) valueControl.append(element("option", { value, text: value, selected: chosen.has(String(value)) }));
      }).catch(() => {});
      valueControl.addEventListener("change", () => {
        spec.filters[label] = filterBuild(operator.value, [...valueControl.selectedOptions].map((option) => option.value));
        this.changed();
      });
    }
    operator.addEventListener("change", () => {
      spec.filters[label] = operator.value === "=~" ? { regex: "" } : filterBuild(operator.value, parsed.operator === "=~" ? [] : parsed.values);
      rerender();
      this.changed();
    });
    const remove = element("button", { type: "button", class: "link danger", text: "Remove", "aria-label": `Remove filter on ${label}` });
    remove.addEventListener("click", () => {
      delete spec.filters[label];
      rerender();
      this.changed();
    });
    row.append(keySelect, operator, valueControl, remove);
    return row;
  }
}

// A filter condition as the query API takes it <-> {operator: "=" | "!=" | "=~", values}.
export function filterParse(condition) {
  if (condition && typeof condition === "object" && !Array.isArray(condition)) {
    const [name, operand] = Object.entries(condition)[0] ?? ["eq", ""];
    if (name === "regex") return { operator: "=~", values: [operand] };
    return { operator: name === "ne" || name === "not_in" ? "!=" : "=", values: [].concat(operand ?? []) };
  }
  return { operator: "=", values: [].concat(condition ?? []) };
}

export function filterBuild(operator, values) {
  if (operator === "!=") return values.length === 1 ? { ne: values[0] } : { not_in: values };
  return values.length === 1 ? values[0] : values;
}
