// A source's page: refreshes the live figures every 5 seconds, uploads a file with a progress bar (the bytes
// sent, then the rows processed as the upload API reports them), and asks before revoking or discarding.

import { get } from "../dashboards/api.js";

const figures = document.getElementById("live-figures");

// A new write key is shown once: select it whenever it gets focus, so one copy takes it all (no inline handler: CSP).
const newSecret = document.getElementById("new-secret");
if (newSecret) {
  newSecret.addEventListener("focus", () => newSecret.select());
  if (document.activeElement === newSecret) newSecret.select();
}

function formatRate(value) {
  return Number(value ?? 0).toLocaleString(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
}

async function refreshFigures() {
  if (!figures || document.hidden) return;
  try {
    const stats = await get(figures.dataset.statsUrl);
    for (const element of figures.querySelectorAll("[data-stat]")) {
      const name = element.dataset.stat;
      const value = stats[name];
      if (name.endsWith("_per_second")) element.textContent = formatRate(value);
      else if (name === "last_seen") element.textContent = value ? new Date(value).toLocaleString() : "never";
      else element.textContent = value ?? 0;
    }
    figures.querySelector(".live-note").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  } catch (error) {
    figures.querySelector(".live-note").textContent = `Could not update: ${error.message}`;
  }
}

if (figures) setInterval(refreshFigures, 5000);

// ----- upload -----

const uploads = document.getElementById("uploads");
const form = uploads?.querySelector(".upload-form");

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function showProgress(phase, percent) {
  const box = form.querySelector(".upload-progress");
  box.hidden = false;
  box.querySelector(".upload-phase").textContent = phase;
  const bar = box.querySelector("progress");
  if (percent === null) bar.removeAttribute("value");
  else bar.value = percent;
  box.querySelector(".upload-percent").textContent = percent === null ? "" : `${Math.round(percent)}%`;
}

function showError(text) {
  const box = form.querySelector(".upload-error");
  box.textContent = text;
  box.hidden = !text;
  const input = form.querySelector("input[type=file]");
  if (text) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  } else input.removeAttribute("aria-invalid");
}

function errorText(xhr) {
  try {
    const body = JSON.parse(xhr.responseText);
    if (body.detail) return body.detail;
  } catch {
    // not JSON: fall through to the status
  }
  return xhr.status ? `The server answered ${xhr.status}.` : "The upload could not reach the server; check your connection and try again.";
}

function send(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", uploads.dataset.uploadsUrl);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) showProgress("Sending…", (event.loaded / event.total) * 100);
    });
    xhr.addEventListener("load", () => (xhr.status >= 200 && xhr.status < 300 ? resolve(JSON.parse(xhr.responseText)) : reject(new Error(errorText(xhr)))));
    xhr.addEventListener("error", () => reject(new Error(errorText(xhr))));
    const body = new FormData();
    body.append("file", file);
    xhr.send(body);
  });
}

const FINISHED = new Set(["done", "failed", "cancelled"]);

async function follow(upload) {
  while (!FINISHED.has(upload.status)) {
    showProgress(upload.status === "queued" ? "Waiting for a worker…" : "Processing rows…", upload.percent ?? null);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    upload = await get(`${uploads.dataset.uploadsUrl.replace(/\/$/, "")}/${upload.id}`);
  }
  return upload;
}

function addRow(upload) {
  const table = uploads.querySelector(".uploads-table tbody");
  if (!table) return;
  const row = document.createElement("tr");
  row.dataset.upload = upload.id;
  for (const text of [upload.original_name, upload.status, `${upload.rows_done}${upload.rows_total ? ` of ${upload.rows_total}` : ""}`, upload.rows_rejected, new Date(upload.created_at).toLocaleString()]) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.append(cell);
  }
  table.prepend(row);
  table.closest(".table-scroll").hidden = false;
}

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const result = form.querySelector(".upload-result");
  result.hidden = true;
  const file = form.querySelector("input[type=file]").files[0];
  if (!file) {
    showError("file: choose a CSV or Parquet file first.");
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    showProgress("Sending…", 0);
    let upload = await send(file);
    upload = await follow(upload);
    showProgress(upload.status === "done" ? "Done" : `Upload ${upload.status}`, upload.percent ?? (upload.status === "done" ? 100 : 0));
    result.hidden = false;
    result.textContent = upload.status === "done"
      ? `${upload.original_name}: ${upload.rows_done.toLocaleString()} rows stored as ${upload.points_written.toLocaleString()} points; ${upload.rows_rejected.toLocaleString()} refused (see dead letters).`
      : `${upload.original_name}: ${upload.status}. ${upload.error || ""}`;
    if (upload.status === "failed") showError(upload.error || "The upload failed.");
    addRow(upload);
    uploads.querySelector(".uploads-empty")?.remove();
  } catch (error) {
    form.querySelector(".upload-progress").hidden = true;
    showError(error.message);
  } finally {
    button.disabled = false;
  }
});

// ----- confirmations -----

for (const confirmForm of document.querySelectorAll("form[data-confirm]")) {
  confirmForm.addEventListener("submit", (event) => {
    if (!window.confirm(confirmForm.dataset.confirm)) event.preventDefault();
  });
}
