// The dashboards list: search by title, tag and folder; create a new dashboard or import one from JSON.

import { get, post, query as queryString, results } from "./api.js";
import { initTheme } from "./theme.js";

const root = document.getElementById("dashboard-list");
const apiBase = root.dataset.api;
const listUrl = root.dataset.listUrl;
const PAGE = 50;
let offset = 0;

const $ = (selector) => root.querySelector(selector);

function showError(text) {
  const box = $("#list-alert");
  box.textContent = text;
  box.hidden = !text;
}

function filters() {
  const form = $("#dashboard-search");
  return { q: form.elements.q.value.trim(), tag: form.elements.tag.value.trim(), folder: form.elements.folder.value.trim() };
}

function row(dashboard) {
  const tr = document.createElement("tr");
  const title = document.createElement("a");
  title.href = `${listUrl}${encodeURIComponent(dashboard.uid)}/`;
  title.textContent = dashboard.title || "Untitled";
  const tags = document.createElement("td");
  for (const tag of dashboard.tags ?? []) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tag";
    button.textContent = tag;
    button.title = `Only dashboards tagged ${tag}`;
    button.addEventListener("click", () => {
      $("#dashboard-search").elements.tag.value = tag;
      load();
    });
    tags.append(button);
  }
  const cells = [title, dashboard.folder ?? "", tags, dashboard.panel_count ?? "", dashboard.updated_at ? new Date(dashboard.updated_at).toLocaleString() : ""];
  for (const cell of cells) {
    if (cell instanceof HTMLTableCellElement) tr.append(cell);
    else {
      const td = document.createElement("td");
      td.append(cell);
      tr.append(td);
    }
  }
  return tr;
}

async function load({ more = false } = {}) {
  const current = filters();
  offset = more ? offset : 0;
  const params = { ...current, limit: PAGE, offset };
  history.replaceState(null, "", `${window.location.pathname}${queryString(current)}`);
  $("#list-status").textContent = "Loading dashboards…";
  try {
    const data = await get(`${apiBase}${queryString(params)}`);
    const items = results(data);
    const body = $("#dashboard-table tbody");
    if (!more) body.replaceChildren();
    body.append(...items.map(row));
    offset += items.length;
    const count = data.count ?? offset;
    const filtered = Boolean(current.q || current.tag || current.folder);
    $("#dashboard-table").hidden = offset === 0;
    $("#list-empty").hidden = offset !== 0;
    $("#list-empty .empty-text").textContent = filtered ? "No dashboards match this search." : "No dashboards yet.";
    $("#list-more").hidden = offset >= count;
    $("#list-status").textContent = offset ? `${count} dashboard${count === 1 ? "" : "s"}` : "";
    showError("");
  } catch (error) {
    $("#list-status").textContent = "";
    showError(`Could not load dashboards: ${error.message}`);
  }
}

function organization() {
  return $("#new-organization")?.value || undefined;
}

// "New dashboard" asks for a name first: nothing is created until it is given.
function openNewDashboard() {
  const dialog = $("#new-dashboard-dialog");
  dialog.querySelector("form").reset();
  dialog.querySelector(".new-dashboard-error").textContent = "";
  dialog.showModal();
  dialog.querySelector("[name=title]").focus();
}

async function createDashboard(event) {
  event.preventDefault();
  const dialog = $("#new-dashboard-dialog");
  const form = dialog.querySelector("form");
  const title = form.elements.title.value.trim();
  const problem = dialog.querySelector(".new-dashboard-error");
  if (!title) {
    problem.textContent = "Give the dashboard a name.";
    return;
  }
  const submit = form.querySelector("[type=submit]");
  submit.disabled = true;
  try {
    const created = await post(apiBase, { organization: organization(), title, folder: form.elements.folder.value.trim(), panels: [] });
    window.location.href = `${listUrl}${encodeURIComponent(created.uid)}/?edit=1`;
  } catch (error) {
    problem.textContent = `Could not create the dashboard: ${error.message}`;
    submit.disabled = false;
  }
}

async function importDashboard(file) {
  if (!file) return;
  let document;
  try {
    document = JSON.parse(await file.text());
  } catch (error) {
    showError(`${file.name} is not a JSON file (${error.message}).`);
    return;
  }
  if (!document || typeof document !== "object" || Array.isArray(document)) {
    showError(`${file.name} does not hold a dashboard document.`);
    return;
  }
  try {
    const created = await post(`${apiBase}import`, { ...document, organization: organization() });
    window.location.href = `${listUrl}${encodeURIComponent(created.uid)}/`;
  } catch (error) {
    showError(`Could not import ${file.name}: ${error.message}`);
  }
}

initTheme($("#theme-toggle"));
$("#dashboard-search").addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});
$("#load-more").addEventListener("click", () => load({ more: true }));
$("#new-dashboard")?.addEventListener("click", openNewDashboard);
$("#new-dashboard-form")?.addEventListener("submit", createDashboard);
for (const button of document.querySelectorAll("#new-dashboard-dialog [data-close]")) button.addEventListener("click", () => button.closest("dialog").close());
$("#import-file")?.addEventListener("change", (event) => {
  importDashboard(event.target.files[0]);
  event.target.value = "";
});
load();
