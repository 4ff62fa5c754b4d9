// The dashboard page: loads a dashboard, lays its panels out on a gridstack grid, fetches and streams
// their data, and (for editors) adds, moves, resizes, edits and removes panels, then saves with the version.

import { Annotations } from "./annotations.js";
import { ApiError, get, post, put, query as queryString } from "./api.js";
import { csvFromRows, csvFromSeries, download, fileSafe } from "./csv.js";
import { catalog, PanelEditor } from "./editor.js";
import { LiveConnection } from "./live.js";
import { fetchAlertList } from "./alert-list.js";
import { PANEL_TYPES, QUERYLESS_TYPES, panelErrorMessage, panelImage, purge, renderPanel, resizePanel } from "./panels.js";
import { openInspector } from "./inspector.js";
import { combinedPoints, panelReduce, REDUCED_TYPES } from "./values.js";
import { dropBefore, lastPointTime, mergeSeries } from "./series.js";
import { initTheme } from "./theme.js";
import { durationSeconds, isRelative, PRESETS, rangeLabel, resolveTime, toLocalInput } from "./timerange.js";
import { ALL, substituteVariables } from "./variables.js";

const COLUMNS = 12;
const PHONE_WIDTH = 768;
const MAX_SERIES_LIMIT = 1000; // the query API's largest `limit`
// On a phone (one column) these panels are only as tall as their content, in grid rows of 80 px.
const PHONE_ROWS = { stat: 2, bargauge: 3 };
const REFRESH_CHOICES = [["live", "Live"], ["off", "Off"], ["5s", "5s"], ["10s", "10s"], ["30s", "30s"], ["1m", "1m"], ["5m", "5m"]];
const DEFAULT_SIZES = { text: [4, 3], stat: [3, 3], gauge: [3, 4], bargauge: [4, 4], table: [6, 4], pie: [4, 4] };

const root = document.getElementById("dashboard");
const $ = (selector) => root.querySelector(selector);
const apiBase = root.dataset.api;
const uid = root.dataset.uid;
const canEditDefault = root.dataset.canEdit === "true";
// Set when the viewer may see sources of several organisations: a bare source slug then means the dashboard's
// organisation's source (slugs are unique per organisation only; docs/access.md, "Source slugs").
const sourceOrganization = root.dataset.sourceOrganization || "";

const state = {
  version: null,
  canEdit: false,
  doc: null,
  editing: false,
  dirty: false,
  range: { start: "-6h", end: "now" },
  liveRange: null, // the relative range to go back to after zooming
  variableValues: {},
  panels: new Map(), // key -> {element, body, status, data: Map(ref -> series), queries}
  refreshTimer: null,
  activeKey: null,
  grid: null,
};

const live = new LiveConnection({ onState: showLiveState });
const annotations = new Annotations({ apiBase, uid, dialog: document.getElementById("annotation-dialog"), onChange: redrawTimeSeries });

function redrawTimeSeries() {
  for (const panel of state.doc?.panels ?? []) {
    const view = state.panels.get(panel.key);
    if (view && panel.type === "timeseries" && view.data.size) draw(panel, view);
  }
}

function annotatePanel(key = state.activeKey) {
  const panel = panelByKey(key) ?? (state.doc.panels ?? []).find((item) => item.type === "timeseries");
  if (panel && annotations.canEdit) annotations.open({ panel });
}

// ----- messages -----

function alertMessage(text, kind = "error", actions = []) {
  const box = $("#dash-alert");
  box.className = `dash-alert ${kind}`;
  box.replaceChildren(document.createTextNode(text), ...actions);
  box.hidden = !text;
}

function toast(text) {
  const box = $("#dash-toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(box._timer);
  box._timer = setTimeout(() => (box.hidden = true), 3000);
}

function showLiveState(connection, detail = "") {
  const box = $("#live-state");
  const liveWanted = state.doc?.refresh === "live" && isRelative(state.range);
  const shown = liveWanted ? connection : "off";
  const labels = {
    open: "Live",
    connecting: "Connecting…",
    reconnecting: "Reconnecting…",
    stale: "Connection lost",
    idle: "Live off",
    off: state.doc?.refresh && state.doc.refresh !== "off" && state.doc.refresh !== "live" ? `Every ${state.doc.refresh}` : "Live off",
  };
  box.dataset.state = shown;
  box.querySelector(".live-text").textContent = labels[shown] ?? shown;
  box.title = detail || labels[shown] || "";
}

// ----- time range -----

function currentRange() {
  const now = new Date();
  return { start: resolveTime(state.range.start, now), end: resolveTime(state.range.end, now) };
}

function setRange(range, { fromZoom = false } = {}) {
  if (fromZoom && isRelative(state.range)) state.liveRange = { ...state.range };
  state.range = { ...range };
  if (isRelative(range)) state.liveRange = null;
  if (state.editing && !fromZoom) {
    state.doc.time_range = { ...range };
    markDirty();
  }
  $("#time-button").textContent = rangeLabel(state.range);
  $("#back-to-live").hidden = isRelative(state.range) || !(state.liveRange || isRelative(state.doc.time_range ?? {}));
  writeUrl();
  reloadAll();
}

function backToLive() {
  setRange(state.liveRange ?? (isRelative(state.doc.time_range ?? {}) ? state.doc.time_range : { start: "-6h", end: "now" }));
}

function openTimePicker() {
  const dialog = $("#time-picker");
  const presets = dialog.querySelector(".presets");
  presets.replaceChildren(
    ...PRESETS.map((preset) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = preset.label;
      button.className = state.range.start === preset.start && state.range.end === "now" ? "selected" : "";
      button.addEventListener("click", () => {
        dialog.close();
        setRange({ start: preset.start, end: "now" });
      });
      return button;
    }),
  );
  const range = currentRange();
  dialog.querySelector("[name=from]").value = toLocalInput(range.start);
  dialog.querySelector("[name=to]").value = toLocalInput(range.end);
  dialog.querySelector(".time-error").textContent = "";
  dialog.showModal();
  presets.querySelector("button")?.focus();
}

function applyAbsoluteRange(event) {
  event.preventDefault();
  const dialog = $("#time-picker");
  const from = new Date(dialog.querySelector("[name=from]").value);
  const to = new Date(dialog.querySelector("[name=to]").value);
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) {
    dialog.querySelector(".time-error").textContent = "Give both a start and an end.";
    return;
  }
  if (to <= from) {
    dialog.querySelector(".time-error").textContent = "The end must be after the start.";
    return;
  }
  dialog.close();
  if (isRelative(state.range)) state.liveRange = { ...state.range };
  setRange({ start: from.toISOString(), end: to.toISOString() }, { fromZoom: true });
}

// ----- variables -----

function readUrl() {
  const params = new URLSearchParams(window.location.search);
  if (params.get("from")) state.range = { start: params.get("from"), end: params.get("to") || "now" };
  for (const [key, value] of params) {
    if (key.startsWith("var-")) state.variableValues[key.slice(4)] = params.getAll(key).length > 1 ? params.getAll(key) : value;
  }
  return params;
}

function writeUrl() {
  const params = new URLSearchParams();
  const docRange = state.doc.time_range ?? {};
  if (state.range.start !== docRange.start || state.range.end !== (docRange.end ?? "now")) {
    params.set("from", state.range.start);
    params.set("to", state.range.end);
  }
  for (const [name, value] of Object.entries(state.variableValues)) {
    for (const item of [].concat(value)) params.append(`var-${name}`, item);
  }
  if (state.editing) params.set("edit", "1");
  const text = params.toString();
  history.replaceState(null, "", `${window.location.pathname}${text ? `?${text}` : ""}`);
}

async function renderVariables() {
  const box = $("#variables");
  box.replaceChildren();
  const variables = state.doc.variables ?? [];
  for (const variable of variables) {
    if (!(variable.name in state.variableValues)) {
      state.variableValues[variable.name] = variable.default?.length ? (variable.multi ? variable.default : variable.default[0]) : variable.multi ? [ALL] : ALL;
    }
  }
  // Every variable's choices at once (in the order shown).
  const listed = await Promise.all(
    variables.map((variable) =>
      catalog.labelValues(variable.label_key || variable.name, { source: qualifiedSource(variable.source) || undefined, metric: variable.metric || undefined }).then(
        (values) => ({ values, problem: "" }),
        (error) => ({ values: [], problem: error.message }),
      ),
    ),
  );
  for (const [index, variable] of variables.entries()) {
    const { values, problem } = listed[index];
    const wrapper = document.createElement("div");
    wrapper.className = "variable";
    wrapper.dataset.variable = variable.name;
    if (problem) wrapper.title = `Could not list values: ${problem}`;
    box.append(wrapper);
    const changed = (value) => {
      state.variableValues[variable.name] = value;
      writeUrl();
      reloadAll();
    };
    if (variable.multi) {
      wrapper.append(multiVariable(variable, values, changed));
      continue;
    }
    const id = `var-${variable.name}`;
    const label = Object.assign(document.createElement("label"), { htmlFor: id, textContent: variable.label || variable.name });
    const control = Object.assign(document.createElement("select"), { id, name: variable.name });
    const chosen = String([].concat(state.variableValues[variable.name])[0] ?? ALL);
    control.append(new Option("All", ALL, false, chosen === ALL));
    for (const value of values) control.append(new Option(value, value, false, chosen === String(value)));
    control.addEventListener("change", () => changed(control.value));
    wrapper.append(label, control);
  }
}

// A multi-value variable: a dropdown of checkboxes, "All" clearing the others.
function multiVariable(variable, values, changed) {
  const details = document.createElement("details");
  details.className = "menu variable-multi";
  const summary = document.createElement("summary");
  const menu = document.createElement("div");
  menu.className = "menu-items";
  menu.setAttribute("role", "group");
  menu.setAttribute("aria-label", variable.label || variable.name);
  const chosen = new Set([].concat(state.variableValues[variable.name]).map(String));
  const describe = () => {
    const list = [...chosen];
    summary.textContent = `${variable.label || variable.name}: ${list.includes(ALL) || !list.length ? "All" : list.join(", ")}`;
  };
  const boxes = [];
  for (const value of [ALL, ...values]) {
    const box = Object.assign(document.createElement("input"), { type: "checkbox", value: String(value), checked: chosen.has(String(value)) });
    const label = document.createElement("label");
    label.className = "inline-check";
    label.append(box, ` ${value === ALL ? "All" : value}`);
    box.addEventListener("change", () => {
      if (box.value === ALL && box.checked) chosen.clear();
      if (box.value !== ALL) chosen.delete(ALL);
      box.checked ? chosen.add(box.value) : chosen.delete(box.value);
      if (!chosen.size) chosen.add(ALL);
      for (const other of boxes) other.checked = chosen.has(other.value);
      describe();
      changed([...chosen]);
    });
    boxes.push(box);
    menu.append(label);
  }
  describe();
  details.append(summary, menu);
  return details;
}

// ----- data -----

function pixelWidth(body) {
  return Math.max(10, Math.round(body.clientWidth || body.getBoundingClientRect().width || 300));
}

export function preparedQuery(spec, { range, values, maxPoints }) {
  const prepared = substituteVariables(spec, values);
  // A query with its own start/end (e.g. "latest values": -5m) keeps it; the others follow the dashboard.
  if (!spec.start) prepared.start = range.start;
  if (!spec.start && !spec.end) prepared.end = range.end;
  prepared.max_points = Math.min(10000, Math.max(10, maxPoints));
  if (!prepared.bucket) prepared.bucket = "auto";
  if (!prepared.source) delete prepared.source;
  else prepared.source = qualifiedSource(prepared.source);
  if (!prepared.group_by?.length) delete prepared.group_by;
  return prepared;
}

function qualifiedSource(source) {
  return sourceOrganization && source && !source.includes("/") ? `${sourceOrganization}/${source}` : source;
}

// Panels that show reduced numbers ask the server for them ("reduce"); a stat's sparkline is a small series query.
export function reducesOnServer(panel) {
  return REDUCED_TYPES.has(panel.type) || panel.type === "bar" || panel.type === "pie" || panel.type === "table";
}

async function fetchQuery(spec, { signal }) {
  const started = performance.now();
  const data = await post("/api/v1/query", spec, { signal });
  return { data, milliseconds: Math.round(performance.now() - started) };
}

async function fetchPanel(panel, view, { signal } = {}) {
  const maxPoints = pixelWidth(view.body);
  const liveMode = state.doc.refresh === "live" && isRelative(state.range) && !state.editingPanel;
  const range = liveMode ? state.range : (() => {
    const resolved = currentRange();
    return { start: resolved.start.toISOString(), end: resolved.end.toISOString() };
  })();
  const reduce = reducesOnServer(panel) ? panelReduce(panel) : null;
  const results = await Promise.all(
    (panel.queries ?? []).filter((item) => item.query?.metric).map(async (item) => {
      const spec = preparedQuery(item.query, { range, values: state.variableValues, maxPoints });
      const base = { ref: item.ref, axis: item.axis, metric: item.query.metric, spec, inspect: [] };
      if (!reduce) {
        const { data, milliseconds } = await fetchQuery(spec, { signal });
        base.inspect.push({ spec, response: data, milliseconds });
        return { ...base, series: data.series ?? [], truncated: data.truncated, bucket: data.bucket };
      }
      // One number across series must count every series, not the first `limit` of them.
      const reducedSpec = { ...spec, reduce, ...(reduce.combination !== "none" && !item.query.limit ? { limit: MAX_SERIES_LIMIT } : {}) };
      const wantsSpark = panel.type === "stat" && panel.options?.sparkline !== false && reduce.combination !== "none";
      const sparkSpec = { ...spec, max_points: Math.min(spec.max_points, 60) };
      const [reduced, spark] = await Promise.all([fetchQuery(reducedSpec, { signal }), wantsSpark ? fetchQuery(sparkSpec, { signal }) : null]);
      base.inspect.push({ spec: reducedSpec, response: reduced.data, milliseconds: reduced.milliseconds });
      if (spark) base.inspect.push({ spec: sparkSpec, response: spark.data, milliseconds: spark.milliseconds });
      return {
        ...base,
        series: [],
        reduced: reduced.data.reduced ?? [],
        spark: spark ? combinedPoints(spark.data.series ?? [], reduce.combination) : null,
        truncated: reduced.data.truncated,
      };
    }),
  );
  return { results, maxPoints, liveMode, reduce };
}

function draw(panel, view) {
  const results = (panel.queries ?? []).map((item) => {
    const fetched = view.fetched?.get(item.ref) ?? {};
    return {
      ref: item.ref,
      axis: item.axis,
      legend: item.legend,
      unit: item.unit,
      hidden: item.hidden,
      metric: item.query?.metric,
      series: view.data.get(item.ref) ?? [],
      reduced: fetched.reduced,
      spark: fetched.spark,
      bucket: fetched.bucket,
    };
  });
  renderPanel(view.body, panel, results, { alerts: view.alerts, range: currentRange(), onZoom: (start, end) => setRange({ start, end }, { fromZoom: true }), annotations: annotations.shapesFor(panel.key) });
  if (panel.type === "timeseries") annotations.bind(view.body, panel);
}

function scheduleDraw(panel, view) {
  if (view.drawPending) return;
  view.drawPending = true;
  requestAnimationFrame(() => {
    view.drawPending = false;
    if (state.doc.refresh === "live" && isRelative(state.range)) {
      const start = currentRange().start;
      for (const [ref, series] of view.data) view.data.set(ref, dropBefore(series, start, durationSeconds(view.fetched?.get(ref)?.bucket)));
    }
    draw(panel, view);
  });
}

// A reduced panel's number is the server's: a live change asks for it again, at most once a second.
function scheduleRefetch(panel, view) {
  if (view.refetchTimer) return;
  view.refetchTimer = setTimeout(async () => {
    view.refetchTimer = null;
    try {
      const { results } = await fetchPanel(panel, view, { signal: view.abort?.signal });
      storeResults(view, results);
      draw(panel, view);
    } catch (error) {
      if (error.name !== "AbortError") view.status.textContent = "Live update failed";
    }
  }, 1000);
}

function storeResults(view, results) {
  view.data = new Map(results.map((result) => [result.ref, result.series]));
  view.fetched = new Map(results.map((result) => [result.ref, result]));
  view.inspect = results.flatMap((result) => result.inspect.map((entry) => ({ ref: result.ref, ...entry })));
}

async function loadPanel(panel) {
  const view = state.panels.get(panel.key);
  if (!view) return;
  view.abort?.abort();
  clearTimeout(view.refetchTimer);
  view.refetchTimer = null;
  const controller = new AbortController();
  view.abort = controller;
  for (const id of view.subscriptions ?? []) live.unsubscribe(id);
  view.subscriptions = [];
  view.status.textContent = "";
  view.status.className = "panel-status";
  clearInterval(view.alertTimer);
  if (panel.type === "text") {
    view.data = new Map();
    draw(panel, view);
    return;
  }
  if (panel.type === "alertlist") {
    await loadAlertList(panel, view, controller.signal);
    // Alert states change without new points: a live dashboard asks again every few seconds.
    if (state.doc.refresh === "live") view.alertTimer = setInterval(() => !document.hidden && loadAlertList(panel, view, controller.signal), ALERT_LIST_POLL_MS);
    return;
  }
  view.element.classList.add("loading");
  try {
    const { results, maxPoints, liveMode, reduce } = await fetchPanel(panel, view, { signal: controller.signal });
    if (controller.signal.aborted) return;
    storeResults(view, results);
    if (results.some((result) => result.truncated)) view.status.textContent = "Some series left out";
    draw(panel, view);
    if (liveMode) {
      for (const result of results) {
        const id = `${panel.key}:${result.ref}`;
        view.subscriptions.push(id);
        live.subscribe(id, result.spec, {
          since: lastPointTime(result.series),
          onData: (series) => {
            if (reduce) {
              scheduleRefetch(panel, view);
              return;
            }
            view.data.set(result.ref, mergeSeries(view.data.get(result.ref) ?? [], series, maxPoints * 2));
            scheduleDraw(panel, view);
          },
          onError: (text) => {
            view.status.textContent = "Live updates paused";
            view.status.title = text;
            view.status.classList.add("warn");
          },
        });
      }
    }
  } catch (error) {
    if (error.name === "AbortError") return;
    panelErrorMessage(view.body, error.message);
  } finally {
    view.element.classList.remove("loading");
  }
}

const ALERT_LIST_POLL_MS = 5000;

async function loadAlertList(panel, view, signal) {
  try {
    view.data = new Map();
    view.alerts = await fetchAlertList(panel, { signal });
    draw(panel, view);
  } catch (error) {
    if (error.name !== "AbortError") panelErrorMessage(view.body, error.message);
  }
}

function reloadAll() {
  clearInterval(state.refreshTimer);
  const refresh = state.doc.refresh ?? "off";
  const liveMode = refresh === "live" && isRelative(state.range);
  if (liveMode) live.open();
  else {
    live.unsubscribeAll();
    live.close();
  }
  showLiveState(live.state);
  annotations.load(currentRange());
  const loads = (state.doc.panels ?? []).map((panel) => loadPanel(panel));
  // When every panel has drawn (or shown its error): a performance mark the benchmark reads (bench/panels_drawn.py).
  Promise.allSettled(loads).then(() => requestAnimationFrame(() => {
    performance.mark("dashboard-panels-drawn");
    root.dataset.panelsDrawn = String(Math.round(performance.now()));
  }));
  const seconds = { "5s": 5, "10s": 10, "30s": 30, "1m": 60, "5m": 300, "15m": 900 }[refresh];
  if (seconds && isRelative(state.range)) {
    state.refreshTimer = setInterval(() => {
      if (!document.hidden) for (const panel of state.doc.panels ?? []) loadPanel(panel);
    }, seconds * 1000);
  }
}

// ----- grid and panels -----

function panelByKey(key) {
  return (state.doc.panels ?? []).find((panel) => panel.key === key);
}

function newKey() {
  const used = new Set((state.doc.panels ?? []).map((panel) => panel.key));
  for (let index = 1; ; index += 1) {
    if (!used.has(`panel-${index}`)) return `panel-${index}`;
  }
}

function panelElement(panel) {
  const template = document.getElementById("panel-template");
  const item = template.content.firstElementChild.cloneNode(true);
  item.setAttribute("gs-id", panel.key);
  item.dataset.key = panel.key;
  const grid = panel.grid ?? {};
  item.setAttribute("gs-x", grid.x ?? 0);
  item.setAttribute("gs-y", grid.y ?? 0);
  item.setAttribute("gs-w", grid.w ?? 6);
  item.setAttribute("gs-h", grid.h ?? 4);
  const content = item.querySelector(".panel");
  content.dataset.key = panel.key;
  content.dataset.type = panel.type;
  item.querySelector(".panel-title").textContent = panel.title || "Untitled";
  const menu = item.querySelector(".panel-menu");
  item.querySelector(".panel-edit").addEventListener("click", () => editPanel(panel.key));
  menu.querySelector("[data-action=csv]").addEventListener("click", () => exportCsv(panel.key));
  menu.querySelector("[data-action=png]").addEventListener("click", () => exportPng(panel.key));
  menu.querySelector("[data-action=inspect]").addEventListener("click", () => openInspector($("#inspector-dialog"), panelByKey(panel.key)?.title, state.panels.get(panel.key)?.inspect));
  menu.querySelector("[data-action=annotate]").hidden = panel.type !== "timeseries" || !state.canEdit;
  menu.querySelector("[data-action=annotate]").addEventListener("click", () => annotatePanel(panel.key));
  menu.querySelector("[data-action=duplicate]").addEventListener("click", () => duplicatePanel(panel.key));
  menu.querySelector("[data-action=remove]").addEventListener("click", () => removePanel(panel.key));
  for (const button of menu.querySelectorAll("button")) button.addEventListener("click", () => menu.closest("details").removeAttribute("open"));
  content.addEventListener("mouseenter", () => (state.activeKey = panel.key));
  content.addEventListener("focusin", () => (state.activeKey = panel.key));
  return item;
}

function addPanelView(panel, { autoPosition = false } = {}) {
  const item = panelElement(panel);
  if (autoPosition) item.setAttribute("gs-auto-position", "true");
  $("#grid").append(item);
  state.grid.makeWidget(item);
  const view = {
    element: item,
    body: item.querySelector(".panel-body"),
    status: item.querySelector(".panel-status"),
    data: new Map(),
    subscriptions: [],
  };
  state.panels.set(panel.key, view);
  new ResizeObserver(() => {
    clearTimeout(view.resizeTimer);
    view.resizeTimer = setTimeout(() => resizePanel(view.body), 100);
  }).observe(view.body);
  return view;
}

function syncLayout() {
  // Only the 12-column layout is the dashboard's; the one-column phone layout is derived from it.
  if (!state.grid || state.grid.getColumn() !== COLUMNS) return;
  let changed = false;
  for (const node of state.grid.engine.nodes) {
    const panel = panelByKey(String(node.id));
    if (!panel) continue;
    const next = { x: node.x, y: node.y, w: node.w, h: node.h };
    const previous = panel.grid ?? {};
    if (previous.x !== next.x || previous.y !== next.y || previous.w !== next.w || previous.h !== next.h) {
      panel.grid = next;
      changed = true;
    }
  }
  if (changed && state.editing) markDirty();
}

function renderEmptyState() {
  const empty = !(state.doc.panels ?? []).length;
  $("#dash-empty").hidden = !empty;
  $("#dash-empty .empty-edit").hidden = !state.canEdit;
}

function buildGrid() {
  const GridStack = window.GridStack;
  state.grid = GridStack.init(
    {
      column: COLUMNS,
      cellHeight: 80,
      margin: 6,
      float: false,
      animate: false,
      staticGrid: true,
      acceptWidgets: ".palette-item",
      alwaysShowResizeHandle: true,
      resizable: { handles: "se" },
      draggable: { handle: ".panel-header", cancel: "button, input, select, summary, a, .panel-menu" },
    },
    $("#grid"),
  );
  state.grid.on("change", syncLayout);
  state.grid.on("dropped", (_event, _previous, node) => {
    // A panel type dragged in from the palette: swap gridstack's clone for a real panel at the drop spot.
    const type = node.el?.dataset.type ?? "timeseries";
    const position = { x: node.x, y: node.y, w: node.w, h: node.h };
    state.grid.removeWidget(node.el, true, false);
    createPanel(type, position);
  });
  state.grid.batchUpdate();
  for (const panel of state.doc.panels ?? []) addPanelView(panel);
  state.grid.batchUpdate(false);
  // Responsive columns only once the 12-column layout is in: gridstack then derives the phone's one-column
  // list from it (in reading order) and keeps the 12-column layout for when the window widens again.
  state.grid.updateOptions({ columnOpts: { breakpointForWindow: false, breakpoints: [{ w: PHONE_WIDTH, c: 1 }], layout: "list" } });
  GridStack.setupDragIn(".palette-item", { appendTo: "body", helper: "clone" });
  syncLayout();
  fitPhoneHeights();
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(fitPhoneHeights, 150);
  });
}

// The one-column phone layout is derived (never saved): stats there are as tall as their number.
function fitPhoneHeights() {
  if (!state.grid || state.grid.getColumn() !== 1) return;
  state.grid.batchUpdate();
  for (const panel of state.doc.panels ?? []) {
    const rows = PHONE_ROWS[panel.type];
    const view = state.panels.get(panel.key);
    if (rows && view && view.element.gridstackNode?.h !== rows) state.grid.update(view.element, { h: rows });
  }
  state.grid.batchUpdate(false);
}

function defaultPanel(type) {
  const [w, h] = DEFAULT_SIZES[type] ?? [6, 4];
  const base = { key: newKey(), title: PANEL_TYPES.find(([value]) => value === type)?.[1] ?? "Panel", type, queries: [], options: {}, grid: { x: 0, y: 0, w, h } };
  if (type === "text") base.options.markdown = "## Notes\n\nDescribe what this dashboard shows.";
  return base;
}

function createPanel(type, position = null, { edit = true } = {}) {
  const panel = defaultPanel(type);
  if (position) panel.grid = { ...panel.grid, ...position };
  state.doc.panels = [...(state.doc.panels ?? []), panel];
  addPanelView(panel, { autoPosition: !position });
  syncLayout();
  markDirty();
  renderEmptyState();
  loadPanel(panel);
  if (edit && type !== "text") editPanel(panel.key);
  return panel;
}

function removePanel(key) {
  const view = state.panels.get(key);
  const panel = panelByKey(key);
  if (!view || !panel) return;
  if (!confirm(`Remove the panel “${panel.title || "Untitled"}”?`)) return;
  for (const id of view.subscriptions ?? []) live.unsubscribe(id);
  clearInterval(view.alertTimer);
  window.Plotly.purge(view.body);
  state.grid.removeWidget(view.element);
  state.panels.delete(key);
  state.doc.panels = state.doc.panels.filter((item) => item.key !== key);
  markDirty();
  renderEmptyState();
}

function duplicatePanel(key) {
  const panel = panelByKey(key);
  if (!panel) return;
  const copy = { ...structuredClone(panel), key: newKey(), title: `${panel.title} (copy)` };
  copy.grid = { ...copy.grid, y: (panel.grid?.y ?? 0) + (panel.grid?.h ?? 4) };
  state.doc.panels.push(copy);
  addPanelView(copy, { autoPosition: true });
  syncLayout();
  markDirty();
  loadPanel(copy);
}

async function editPanel(key) {
  if (!state.canEdit) return;
  const panel = panelByKey(key ?? state.activeKey ?? state.doc.panels?.[0]?.key);
  if (!panel) return;
  if (!state.editing) setEditing(true);
  state.editingPanel = true;
  const edited = await state.editor.open(panel);
  state.editingPanel = false;
  if (!edited) return;
  Object.assign(panel, edited, { key: panel.key, grid: panel.grid });
  const view = state.panels.get(panel.key);
  view.element.querySelector(".panel-title").textContent = panel.title || "Untitled";
  view.element.querySelector(".panel").dataset.type = panel.type;
  markDirty();
  loadPanel(panel);
}

async function previewPanel(panel, container) {
  // The preview is drawn again on every edit: react() over the same chart, or a purge when the type changes.
  if (container._previewType !== panel.type) purge(container);
  container._previewType = panel.type;
  const view = { body: container, data: new Map() };
  try {
    if (panel.type === "alertlist") view.alerts = await fetchAlertList(panel);
    else if (!QUERYLESS_TYPES.has(panel.type)) {
      const { results } = await fetchPanel(panel, view);
      storeResults(view, results);
    }
    draw(panel, view);
    container.dataset.drawn = String(Number(container.dataset.drawn ?? 0) + 1);
  } catch (error) {
    panelErrorMessage(container, error.message);
  }
  return view.inspect ?? [];
}

function exportCsv(key) {
  const panel = panelByKey(key);
  const view = state.panels.get(key);
  if (!panel || !view) return;
  if (panel.type === "alertlist") {
    const items = view.alerts?.items ?? [];
    if (!items.length) toast("This panel has no alerts to export.");
    else download(`${fileSafe(panel.title)}.csv`, csvFromRows([["state", "rule", "labels", "since", "value"], ...items.map((item) => [item.state, item.rule_name, Object.entries(item.labels ?? {}).map(([name, value]) => `${name}=${value}`).join(" "), item.state_since, item.value ?? ""])]));
    return;
  }
  const several = (panel.queries ?? []).length > 1;
  const series = [];
  const reducedRows = [];
  for (const item of panel.queries ?? []) {
    for (const entry of view.data.get(item.ref) ?? []) series.push({ ...entry, labels: { ...(several ? { query: item.ref } : {}), ...entry.labels } });
    for (const entry of view.fetched?.get(item.ref)?.reduced ?? []) reducedRows.push({ query: item.legend || item.query?.metric || item.ref, ...entry });
  }
  if (reducedRows.length) {
    const keys = [...new Set(reducedRows.flatMap((row) => Object.keys(row.labels ?? {})))].sort();
    download(`${fileSafe(panel.title)}.csv`, csvFromRows([["query", ...keys, "value"], ...reducedRows.map((row) => [row.query, ...keys.map((name) => row.labels?.[name] ?? ""), row.value])]));
    return;
  }
  if (!series.length) {
    toast("This panel has no data to export.");
    return;
  }
  download(`${fileSafe(panel.title)}.csv`, csvFromSeries(series));
}

function exportPng(key) {
  const panel = panelByKey(key);
  const view = state.panels.get(key);
  if (!panel || !view || !panelImage(view.body, fileSafe(panel.title))) toast("Only charts can be saved as images.");
}

// ----- editing, saving, versions -----

function markDirty() {
  if (!state.editing) return;
  state.dirty = true;
  $("#save").disabled = false;
  $("#dirty-note").hidden = false;
}

function setEditing(on) {
  state.editing = on && state.canEdit;
  root.classList.toggle("editing", state.editing);
  state.grid.setStatic(!state.editing);
  for (const selector of ["#save", "#add-panel", "#settings-button", "#palette", "#dirty-note"]) $(selector).hidden = !state.editing;
  $("#dirty-note").hidden = !state.dirty;
  $("#save").disabled = !state.dirty;
  $("#edit-toggle").textContent = state.editing ? "Done" : "Edit";
  $("#edit-toggle").setAttribute("aria-pressed", String(state.editing));
  writeUrl();
}

async function save() {
  if (!state.canEdit || !state.editing) return;
  if (!state.dirty) {
    toast("Nothing to save.");
    return;
  }
  syncLayout();
  const button = $("#save");
  button.disabled = true;
  button.textContent = "Saving…";
  try {
    const message = $("#save-message")?.value ?? "";
    const data = await put(`${apiBase}${uid}/`, { document: state.doc, version: state.version, message });
    state.version = data.version ?? state.version + 1;
    if (data.document) state.doc = { ...state.doc, ...data.document, panels: state.doc.panels };
    state.dirty = false;
    $("#dirty-note").hidden = true;
    alertMessage("");
    toast(`Saved (version ${state.version}).`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      const reload = document.createElement("button");
      reload.type = "button";
      reload.textContent = "Reload the latest version";
      reload.addEventListener("click", () => window.location.reload());
      alertMessage(`${error.message || "Someone else saved this dashboard since you opened it."} Your changes were not saved. `, "error", [reload]);
    } else {
      alertMessage(`Could not save: ${error.message}`);
    }
    button.disabled = false;
  } finally {
    button.textContent = "Save";
    button.disabled = !state.dirty;
  }
}

async function openVersions() {
  const dialog = $("#versions-dialog");
  const list = dialog.querySelector(".versions-list");
  list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "Loading…" }));
  dialog.showModal();
  try {
    const data = await get(`${apiBase}${uid}/versions/`);
    const versions = Array.isArray(data) ? data : (data.results ?? []);
    if (!versions.length) {
      list.replaceChildren(Object.assign(document.createElement("li"), { className: "empty", textContent: "No earlier versions." }));
      return;
    }
    list.replaceChildren(
      ...versions.map((version) => {
        const item = document.createElement("li");
        const who = version.created_by?.username ?? version.created_by ?? version.author ?? "";
        const when = version.created_at ? new Date(version.created_at).toLocaleString() : "";
        const text = document.createElement("span");
        text.textContent = `v${version.version} · ${when}${who ? ` · ${who}` : ""}${version.message ? ` — ${version.message}` : ""}`;
        item.append(text);
        if (state.canEdit && version.version !== state.version) {
          const restore = document.createElement("button");
          restore.type = "button";
          restore.textContent = "Restore";
          restore.addEventListener("click", async () => {
            if (state.dirty && !confirm("Restoring discards your unsaved changes. Continue?")) return;
            try {
              await post(`${apiBase}${uid}/versions/${version.version}/restore`, { expected_version: state.version });
              state.dirty = false;
              window.location.reload();
            } catch (error) {
              text.textContent += ` (restore failed: ${error.message})`;
            }
          });
          item.append(" ", restore);
        } else if (version.version === state.version) {
          item.append(Object.assign(document.createElement("span"), { className: "badge active", textContent: "current" }));
        }
        return item;
      }),
    );
  } catch (error) {
    list.replaceChildren(Object.assign(document.createElement("li"), { className: "error", textContent: error.message }));
  }
}

async function duplicateDashboard() {
  try {
    const data = await post(`${apiBase}${uid}/duplicate`);
    window.location.href = `${root.dataset.listUrl}${data.uid}/`;
  } catch (error) {
    alertMessage(`Could not duplicate: ${error.message}`);
  }
}

async function exportDashboard() {
  try {
    const data = await get(`${apiBase}${uid}/export`);
    download(`${fileSafe(state.doc.title)}.json`, JSON.stringify(data, null, 2), "application/json");
  } catch (error) {
    alertMessage(`Could not export: ${error.message}`);
  }
}

// Settings: title, folder, tags, refresh and the variables.
function openSettings() {
  const dialog = $("#settings-dialog");
  const form = dialog.querySelector("form");
  form.elements.title.value = state.doc.title ?? "";
  form.elements.folder.value = state.doc.folder ?? "";
  form.elements.tags.value = (state.doc.tags ?? []).join(", ");
  const rows = dialog.querySelector(".variable-rows");
  rows.replaceChildren(...(state.doc.variables ?? []).map(variableRow));
  dialog.querySelector(".settings-error").textContent = "";
  dialog.showModal();
}

function variableRow(variable = {}) {
  const row = document.getElementById("variable-row-template").content.firstElementChild.cloneNode(true);
  for (const name of ["name", "label", "label_key", "source", "metric"]) row.querySelector(`[data-field=${name}]`).value = variable[name] ?? "";
  row.querySelector("[data-field=multi]").checked = Boolean(variable.multi);
  row.querySelector("[data-field=default]").value = [].concat(variable.default ?? []).join(", ");
  row.querySelector(".remove-variable").addEventListener("click", () => row.remove());
  return row;
}

function applySettings(event) {
  event.preventDefault();
  const dialog = $("#settings-dialog");
  const form = dialog.querySelector("form");
  const title = form.elements.title.value.trim();
  if (!title) {
    dialog.querySelector(".settings-error").textContent = "The dashboard needs a title.";
    return;
  }
  const variables = [];
  for (const row of dialog.querySelectorAll(".variable-row")) {
    const value = (name) => row.querySelector(`[data-field=${name}]`).value.trim();
    if (!value("name")) continue;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(value("name"))) {
      dialog.querySelector(".settings-error").textContent = `Variable names use letters, digits and _ (not “${value("name")}”).`;
      return;
    }
    const multi = row.querySelector("[data-field=multi]").checked;
    const defaults = value("default").split(",").map((item) => item.trim()).filter(Boolean);
    variables.push({
      name: value("name"),
      label: value("label") || value("name"),
      label_key: value("label_key") || value("name"),
      source: value("source") || undefined,
      metric: value("metric") || undefined,
      multi,
      default: defaults,
    });
  }
  state.doc.title = title;
  state.doc.folder = form.elements.folder.value.trim();
  state.doc.tags = form.elements.tags.value.split(",").map((tag) => tag.trim()).filter(Boolean);
  state.doc.variables = variables;
  dialog.close();
  renderTitle();
  markDirty();
  renderVariables().then(reloadAll);
}

function renderTitle() {
  $("#dash-title").textContent = state.doc.title || "Untitled dashboard";
  document.title = `${state.doc.title || "Dashboard"} · Analytics Platform`;
  const tags = $("#dash-tags");
  tags.replaceChildren(...(state.doc.tags ?? []).map((tag) => Object.assign(document.createElement("span"), { className: "tag", textContent: tag })));
  $("#dash-folder").textContent = state.doc.folder ? `${state.doc.folder} /` : "";
}

// ----- keyboard -----

function typing(event) {
  const target = event.target;
  return target.closest?.("input, textarea, select, [contenteditable=true]") || document.querySelector("dialog[open]");
}

function onKey(event) {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
    event.preventDefault();
    save();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
  const actions = {
    e: () => editPanel(),
    a: () => annotatePanel(),
    s: save,
    t: openTimePicker,
    r: reloadAll,
    "?": () => $("#help-dialog").showModal(),
    l: () => !isRelative(state.range) && backToLive(),
  };
  const action = actions[event.key];
  if (action) {
    event.preventDefault();
    action();
  }
}

// ----- start -----

async function start() {
  initTheme($("#theme-toggle"));
  const params = readUrl();
  let data;
  try {
    data = embeddedDetail() ?? (await get(`${apiBase}${uid}/`));
  } catch (error) {
    $("#dash-title").textContent = error.status === 404 ? "Dashboard not found" : "Could not load the dashboard";
    alertMessage(error.status === 404 ? "No dashboard with this address exists, or you cannot see it." : error.message);
    root.classList.add("failed");
    return;
  }
  state.doc = data.document ?? {};
  state.doc.panels ??= [];
  state.version = data.version;
  state.canEdit = Boolean(data.can_edit ?? canEditDefault);
  annotations.canEdit = state.canEdit;
  if (!params.get("from")) state.range = { ...(state.doc.time_range ?? { start: "-6h", end: "now" }) };
  state.range.end ??= "now";
  renderTitle();
  $("#time-button").textContent = rangeLabel(state.range);
  $("#back-to-live").hidden = isRelative(state.range);
  const refresh = $("#refresh");
  refresh.replaceChildren(...REFRESH_CHOICES.map(([value, label]) => new Option(label, value, false, value === (state.doc.refresh ?? "off"))));
  refresh.addEventListener("change", () => {
    state.doc.refresh = refresh.value;
    markDirty();
    reloadAll();
  });
  $("#edit-toggle").hidden = !state.canEdit;
  state.editor = new PanelEditor($("#panel-editor"), { preview: previewPanel, variables: () => (state.doc.variables ?? []).map((variable) => variable.name) });
  buildGrid();
  renderEmptyState();
  // The panels ask for their data at once: the variables' values are set synchronously (renderVariables runs
  // to its first await), and their lists of choices fill in meanwhile.
  const variablesShown = renderVariables();
  setEditing(params.get("edit") === "1");
  reloadAll();
  await variablesShown;
  root.classList.add("ready");
}

// The dashboard as GET /api/v1/dashboards/<uid>/ answers it, embedded in the page (read once: a later load asks).
function embeddedDetail() {
  const element = document.getElementById("dashboard-detail");
  if (!element) return null;
  element.remove();
  return JSON.parse(element.textContent);
}

function wire() {
  $("#time-button").addEventListener("click", openTimePicker);
  $("#time-picker form").addEventListener("submit", applyAbsoluteRange);
  $("#back-to-live").addEventListener("click", backToLive);
  $("#refresh-now").addEventListener("click", reloadAll);
  $("#edit-toggle").addEventListener("click", () => setEditing(!state.editing));
  $("#add-panel").addEventListener("click", () => createPanel("timeseries"));
  $("#dash-empty .empty-edit").addEventListener("click", () => {
    setEditing(true);
    createPanel("timeseries");
  });
  for (const item of root.querySelectorAll(".palette-item")) {
    item.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        createPanel(item.dataset.type);
      }
    });
    item.addEventListener("dblclick", () => createPanel(item.dataset.type));
  }
  $("#save").addEventListener("click", save);
  $("#versions-button").addEventListener("click", openVersions);
  $("#duplicate-button").addEventListener("click", duplicateDashboard);
  $("#export-button").addEventListener("click", exportDashboard);
  $("#settings-button").addEventListener("click", openSettings);
  $("#settings-dialog form").addEventListener("submit", applySettings);
  $("#add-variable").addEventListener("click", () => $("#settings-dialog .variable-rows").append(variableRow()));
  $("#help-button").addEventListener("click", () => $("#help-dialog").showModal());
  for (const button of root.querySelectorAll("[data-close]")) button.addEventListener("click", () => button.closest("dialog").close());
  document.addEventListener("click", (event) => {
    for (const details of root.querySelectorAll("details.menu[open]")) {
      if (!details.contains(event.target)) details.removeAttribute("open");
    }
  });
  document.addEventListener("keydown", onKey);
  document.addEventListener("themechange", () => {
    for (const panel of state.doc?.panels ?? []) {
      const view = state.panels.get(panel.key);
      if (view) draw(panel, view);
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.doc?.refresh === "live" && live.state !== "open" && isRelative(state.range)) live.open();
  });
  window.addEventListener("beforeunload", (event) => {
    if (state.dirty) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
}

// For browser tests and debugging.
window.dashboardPage = { state, live, save, setEditing, createPanel, setRange, backToLive, annotations };

wire();
start();
