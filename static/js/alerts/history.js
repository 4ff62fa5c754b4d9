// The rule page's state history as a timeline: one row per alert instance, a bar per state from each change to the
// next (the last one to now), drawn with plotly.js from the transitions the page embeds (newest 200).

import { chartColors } from "../dashboards/theme.js";

const COLORS = { normal: "#56a64b", pending: "#d6a21d", firing: "#c4162a", recovering: "#e0752d", nodata: "#8f3bb8", error: "#6e7f8f" };

function labelsText(labels) {
  return Object.entries(labels ?? {}).map(([key, value]) => `${key}=${value}`).join(", ") || "(no labels)";
}

export function timelineBars(history, now = Date.now()) {
  // {state: {base: [...], x: [...durations ms], y: [...rows], text: [...]}} from transitions in any order.
  const byInstance = new Map();
  for (const change of history) {
    if (!byInstance.has(change.instance)) byInstance.set(change.instance, []);
    byInstance.get(change.instance).push(change);
  }
  const bars = {};
  for (const changes of byInstance.values()) {
    changes.sort((a, b) => Date.parse(a.at) - Date.parse(b.at) || a.id - b.id);
    changes.forEach((change, index) => {
      const start = Date.parse(change.at);
      const end = index + 1 < changes.length ? Date.parse(changes[index + 1].at) : now;
      const bar = (bars[change.to_state] ??= { base: [], x: [], y: [], text: [] });
      bar.base.push(new Date(start).toISOString());
      bar.x.push(Math.max(end - start, 1000));
      bar.y.push(labelsText(change.labels));
      bar.text.push(`${change.from_state} → ${change.to_state}${change.value === null ? "" : ` at ${change.value_text}`}: ${change.reason}`);
    });
  }
  return bars;
}

function draw() {
  const container = document.getElementById("history-timeline");
  const history = JSON.parse(document.getElementById("history-data").textContent);
  if (!container || !history.length) return;
  const colors = chartColors();
  const bars = timelineBars(history);
  const rows = new Set(Object.values(bars).flatMap((bar) => bar.y)).size;
  const data = Object.entries(bars).map(([state, bar]) => ({
    type: "bar", orientation: "h", name: state, base: bar.base, x: bar.x, y: bar.y, text: bar.text,
    textposition: "none", marker: { color: COLORS[state] ?? "#3274d9" }, hovertemplate: "%{text}<extra>%{y}</extra>",
  }));
  const layout = {
    height: Math.max(120, 60 + rows * 32), barmode: "overlay", bargap: 0.35, margin: { l: 8, r: 8, t: 8, b: 8 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { color: colors.fg, size: 11 },
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    xaxis: { type: "date", gridcolor: colors.grid, automargin: true }, yaxis: { automargin: true, fixedrange: true },
  };
  window.Plotly.react(container, data, layout, { displaylogo: false, displayModeBar: false, responsive: true });
  container.dataset.drawn = "1";
}

draw();
document.addEventListener("themechange", draw);
