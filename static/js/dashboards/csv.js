// CSV export of a panel's data. Cells that a spreadsheet would run as a formula get a leading apostrophe.

const FORMULA_START = /^[=+\-@\t\r]/;

export function csvCell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return String(value); // a negative reading is data, not a formula
  let text = String(value);
  if (FORMULA_START.test(text)) text = `'${text}`;
  if (/[",\n\r]/.test(text)) text = `"${text.replace(/"/g, '""')}"`;
  return text;
}

export function csvFromRows(rows) {
  return rows.map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

export function seriesName(labels, fallback = "value") {
  const entries = Object.entries(labels ?? {});
  return entries.length ? entries.map(([key, value]) => `${key}=${value}`).join(", ") : fallback;
}

// One row per point: time, one column per label, value. Label values are escaped like any text; values
// that are numbers stay numbers (a negative reading is data, not a formula).
export function csvFromSeries(series) {
  const keys = [...new Set(series.flatMap((item) => Object.keys(item.labels ?? {})))].sort();
  const rows = [["time", ...keys, "value"]];
  for (const item of series) {
    for (const [time, value] of item.points ?? []) rows.push([time, ...keys.map((key) => item.labels?.[key] ?? ""), value]);
  }
  const last = keys.length + 1;
  return rows.map((row) => row.map((cell, column) => (column === last && typeof cell === "number" ? String(cell) : csvCell(cell))).join(",")).join("\r\n") + "\r\n";
}

export function download(filename, text, type = "text/csv;charset=utf-8") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function fileSafe(name) {
  return String(name || "panel").replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 80) || "panel";
}
