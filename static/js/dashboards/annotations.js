// Annotations on time-series panels: loads a dashboard's annotations for the time range, turns them into plotly
// shapes (a dashed line for an instant, a shaded band for a range), and lets editors add one by clicking a chart
// or from the panel menu, in a small form that works from the keyboard.

import { del, get, post, query as queryString, results } from "./api.js";

const COLORS = { manual: "#d6a21d", alert: "#c4162a" };

function pad(number) {
  return String(number).padStart(2, "0");
}

// <input type="datetime-local"> speaks local wall time without a zone.
function toLocalInput(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

// Plotly reports dates on a UTC axis as "YYYY-MM-DD HH:MM:SS.sss" without a zone.
export function plotlyTime(value) {
  const text = String(value).replace(" ", "T");
  return new Date(/Z|[+-]\d\d:?\d\d$/.test(text) || !text.includes("T") ? text : `${text}Z`);
}

// Plotly shapes for annotations: those of the panel and the dashboard-wide ones.
export function annotationShapes(annotations, panelKey) {
  const shapes = [];
  for (const item of annotations) {
    if (item.panel && item.panel !== panelKey) continue;
    const color = COLORS[item.kind] ?? COLORS.manual;
    const start = new Date(item.time).toISOString();
    const label = { text: item.text.length > 40 ? `${item.text.slice(0, 39)}…` : item.text, font: { size: 10, color }, textposition: "top left" };
    if (item.time_end) {
      shapes.push({ type: "rect", xref: "x", yref: "paper", x0: start, x1: new Date(item.time_end).toISOString(), y0: 0, y1: 1, fillcolor: color, opacity: 0.12, line: { width: 0 }, layer: "below", label: { ...label, textposition: "top left" }, name: `annotation-${item.id}` });
    } else {
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: start, x1: start, y0: 0, y1: 1, line: { color, width: 1.5, dash: "dash" }, label: { ...label, textposition: "end", textangle: 0, xanchor: "left" }, name: `annotation-${item.id}` });
    }
  }
  return shapes;
}

export class Annotations {
  constructor({ apiBase, uid, dialog, onChange }) {
    this.url = `${apiBase}${uid}/annotations/`;
    this.dialog = dialog;
    this.onChange = onChange;
    this.items = [];
    this.canEdit = false;
    this.form = dialog.querySelector("form");
    this.form.addEventListener("submit", (event) => this.submit(event));
    for (const button of dialog.querySelectorAll("[data-close]")) button.addEventListener("click", () => dialog.close());
  }

  async load(range) {
    try {
      const data = await get(`${this.url}${queryString({ start: range.start.toISOString(), end: range.end.toISOString(), limit: 1000 })}`);
      this.items = results(data);
    } catch {
      this.items = []; // the charts still draw; annotations are extra
    }
    this.onChange?.();
  }

  shapesFor(panelKey) {
    return annotationShapes(this.items, panelKey);
  }

  // Clicking a point of a time-series chart opens the form at that time (editors only).
  bind(element, panel) {
    if (!this.canEdit || !element._plotted || element._annotateEvents === element._ev) return;
    element._annotateEvents = element._ev; // Plotly.purge drops handlers with the emitter; bind again after it
    element.on("plotly_click", (event) => {
      const x = event?.points?.[0]?.x;
      if (x !== undefined) this.open({ time: plotlyTime(x), panel });
    });
  }

  open({ time = new Date(), panel = null } = {}) {
    const form = this.form;
    form.reset();
    form.elements.time.value = toLocalInput(time);
    form.elements.time_end.value = "";
    form.elements.scope.checked = Boolean(panel);
    form.elements.scope.disabled = !panel;
    form.dataset.panel = panel?.key ?? "";
    this.dialog.querySelector(".annotation-panel-name").textContent = panel ? `Only on “${panel.title || panel.key}”` : "Only on this panel";
    this.showError("");
    this.renderExisting(panel);
    this.dialog.showModal();
    form.elements.text.focus();
  }

  renderExisting(panel) {
    const list = this.dialog.querySelector(".annotation-list");
    const mine = this.items.filter((item) => !item.panel || item.panel === panel?.key);
    list.replaceChildren(
      ...mine.map((item) => {
        const row = document.createElement("li");
        const when = new Date(item.time).toLocaleString();
        row.textContent = `${when}${item.time_end ? ` – ${new Date(item.time_end).toLocaleString()}` : ""}: ${item.text} `;
        if (this.canEdit) {
          const remove = document.createElement("button");
          remove.type = "button";
          remove.className = "link danger";
          remove.textContent = "Delete";
          remove.setAttribute("aria-label", `Delete annotation ${item.text}`);
          remove.addEventListener("click", async () => {
            try {
              await del(`${this.url}${item.id}`);
              this.items = this.items.filter((other) => other.id !== item.id);
              row.remove();
              this.onChange?.();
            } catch (error) {
              this.showError(error.message);
            }
          });
          row.append(remove);
        }
        return row;
      }),
    );
    list.closest("section").hidden = !mine.length;
  }

  showError(text) {
    const box = this.dialog.querySelector(".annotation-error");
    box.textContent = text;
    box.hidden = !text;
  }

  async submit(event) {
    event.preventDefault();
    const form = this.form;
    const time = form.elements.time.value ? new Date(form.elements.time.value) : null;
    const end = form.elements.time_end.value ? new Date(form.elements.time_end.value) : null;
    const body = {
      time: time && !Number.isNaN(time.getTime()) ? time.toISOString() : "",
      text: form.elements.text.value,
      tags: form.elements.tags.value.split(",").map((tag) => tag.trim()).filter(Boolean),
    };
    if (end) body.time_end = end.toISOString();
    if (form.elements.scope.checked && form.dataset.panel) body.panel = form.dataset.panel;
    try {
      const created = await post(this.url, body);
      this.items.push(created);
      this.items.sort((a, b) => a.time.localeCompare(b.time));
      this.dialog.close();
      this.onChange?.();
    } catch (error) {
      this.showError(error.message);
      const field = error.body?.field === "time_end" ? "time_end" : error.body?.field;
      form.elements[field]?.focus?.();
    }
  }
}
