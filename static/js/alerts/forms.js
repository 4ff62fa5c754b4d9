// Shared by the alerting forms: the API's field errors shown next to the field they name, and the small text
// syntaxes the forms use instead of JSON ("team=presses, site=f2"; matchers "device=~press-.*").

import { api } from "../dashboards/api.js";

export { api, get, post, del, ApiError } from "../dashboards/api.js";
export const patch = (url, body) => api("PATCH", url, body);

// The API names a refused input by its path ("queries[0].query.metric", "condition.recovery", "config.url"). Each
// form field lists the paths it answers for in data-field; the longest listed prefix of the path wins.
function fieldFor(form, path) {
  let best = null;
  let bestLength = -1;
  for (const candidate of form.querySelectorAll("[data-field]")) {
    for (const name of candidate.dataset.field.split(" ")) {
      const matches = path === name || path.startsWith(`${name}.`) || path.startsWith(`${name}[`);
      if (matches && name.length > bestLength) {
        best = candidate;
        bestLength = name.length;
      }
    }
  }
  return best;
}

export function errorsClear(form) {
  for (const node of form.querySelectorAll(".field-error")) node.remove();
  for (const node of form.querySelectorAll(".has-error")) node.classList.remove("has-error");
  for (const node of form.querySelectorAll("[aria-invalid]")) {
    node.removeAttribute("aria-invalid");
    node.removeAttribute("aria-errormessage");
  }
}

// Shows an API error next to its field (focusing it) and returns true, or returns false when no field matches.
export function errorShow(form, error) {
  const path = error?.body?.field;
  const container = path ? fieldFor(form, path) : null;
  if (!container) return false;
  const message = document.createElement("p");
  message.className = "field-error error";
  message.id = `error-${Math.random().toString(36).slice(2, 9)}`;
  message.textContent = error.body.detail ?? error.message;
  container.classList.add("has-error");
  if (container.hidden) container.hidden = false;
  container.append(message);
  const control = container.querySelector("input, select, textarea");
  if (control) {
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-errormessage", message.id);
    control.focus();
  }
  return true;
}

// "team=presses, site=f2" <-> {"team": "presses", "site": "f2"}.
export function pairsParse(text) {
  const pairs = {};
  for (const part of String(text ?? "").split(/[,\n]/)) {
    const trimmed = part.trim();
    if (!trimmed) continue;
    const at = trimmed.indexOf("=");
    if (at < 1) throw new Error(`"${trimmed}" is not name=value.`);
    pairs[trimmed.slice(0, at).trim()] = trimmed.slice(at + 1).trim();
  }
  return pairs;
}

export function pairsFormat(pairs) {
  return Object.entries(pairs ?? {}).map(([key, value]) => `${key}=${value}`).join(", ");
}

export function listParse(text) {
  return String(text ?? "").split(",").map((item) => item.trim()).filter(Boolean);
}

// Matchers as text, one per line or comma: `label=value`, `label!=value`, `label=~regex`, `label!~regex`.
const MATCHER = /^([^=!~\s]+)\s*(=~|!~|!=|=)\s*(.*)$/;

export function matchersParse(text) {
  const matchers = [];
  for (const line of String(text ?? "").split("\n")) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const found = MATCHER.exec(trimmed);
    if (!found) throw new Error(`"${trimmed}" is not a matcher such as device=press-7 or device=~press-.*`);
    matchers.push({ label: found[1], op: found[2], value: found[3].trim() });
  }
  return matchers;
}

export function matchersFormat(matchers) {
  return (matchers ?? []).map((matcher) => `${matcher.label}${matcher.op}${matcher.value}`).join("\n");
}

// "300s" (as the API shows durations) -> "5m"; unchanged when not a whole number of a larger unit.
export function durationShort(text) {
  const found = /^(\d+)s$/.exec(String(text ?? ""));
  if (!found) return text ?? "";
  const seconds = Number(found[1]);
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

// A row repeated from a <template>: each [data-role] part answers for the row's API paths (`${path}.${role}`; several
// roles separated by spaces), so a refusal lands beside it.
export function rowPaths(row, path) {
  for (const part of row.querySelectorAll("[data-role]")) {
    part.dataset.field = part.dataset.role.split(" ").map((role) => `${path}.${role}`).join(" ");
  }
}

// Each [data-name] input of such a row gets the id `${prefix}-${name}-${key}`, which its label[data-for=name] names.
export function rowIds(row, prefix, key) {
  for (const input of row.querySelectorAll("[data-name]")) {
    input.id = `${prefix}-${input.dataset.name}-${key}`;
    row.querySelector(`label[data-for=${input.dataset.name}]`).htmlFor = input.id;
  }
}

export function statusSet(text, element = document.getElementById("alerts-status")) {
  if (element) element.textContent = text;
}
