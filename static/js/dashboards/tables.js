// Table panels. "join" (the default, Grafana's "join by labels"): one row per label set, one column per query.
// "series": one row per query and series, with a query column. Values are the server's reductions.

import { displayValue, labelsText } from "./values.js";

function columnName(result) {
  return result.legend || result.metric || result.ref;
}

// {columns: [{key, title, numeric, unit}], rows: [[cell, ...]]} from the results' reduced values.
export function tableModel(panel, results) {
  const options = panel.options ?? {};
  const shown = results.filter((result) => !result.hidden);
  const labelKeys = [...new Set(shown.flatMap((result) => (result.reduced ?? []).flatMap((item) => Object.keys(item.labels ?? {}))))];
  if (options.table_mode === "series") {
    const columns = [{ title: "Query" }, ...labelKeys.map((key) => ({ title: key })), { title: "Value", numeric: true }];
    const rows = [];
    for (const result of shown) {
      for (const item of result.reduced ?? []) {
        rows.push([{ text: columnName(result) }, ...labelKeys.map((key) => ({ text: item.labels?.[key] ?? "" })), numberCell(item.value, options, result.unit || options.unit)]);
      }
    }
    return { columns, rows };
  }
  const rowsByKey = new Map();
  shown.forEach((result, index) => {
    for (const item of result.reduced ?? []) {
      const key = JSON.stringify(labelKeys.map((name) => item.labels?.[name] ?? null));
      if (!rowsByKey.has(key)) rowsByKey.set(key, { labels: item.labels ?? {}, values: new Array(shown.length).fill(null) });
      rowsByKey.get(key).values[index] = item.value;
    }
  });
  const columns = [
    ...(labelKeys.length ? labelKeys.map((key) => ({ title: key })) : [{ title: "Series" }]),
    ...shown.map((result) => ({ title: columnName(result) + (result.unit ? ` (${result.unit})` : ""), numeric: true })),
  ];
  const rows = [...rowsByKey.values()].map((row) => [
    ...(labelKeys.length ? labelKeys.map((key) => ({ text: row.labels[key] ?? "" })) : [{ text: labelsText(row.labels) || panel.title || "value" }]),
    ...row.values.map((value, index) => numberCell(value, options, shown[index].unit ? "" : options.unit)),
  ]);
  return { columns, rows };
}

function numberCell(value, options, unit) {
  const shown = displayValue(value, { ...options, unit }, "");
  return { text: shown.text, value, color: shown.color };
}

export function renderTable(element, panel, results) {
  const { columns, rows } = tableModel(panel, results);
  const firstNumeric = columns.findIndex((column) => column.numeric);
  const state = element._sort ?? { column: 0, descending: false };
  const sorted = [...rows].sort((a, b) => {
    const x = a[state.column];
    const y = b[state.column];
    const order = columns[state.column]?.numeric
      ? (x.value ?? -Infinity) - (y.value ?? -Infinity)
      : String(x?.text ?? "").localeCompare(String(y?.text ?? ""), undefined, { numeric: true });
    return state.descending ? -order : order;
  });
  const tableElement = document.createElement("table");
  tableElement.className = "panel-table";
  const head = tableElement.createTHead().insertRow();
  columns.forEach((column, index) => {
    const cell = document.createElement("th");
    if (column.numeric) cell.className = "number";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link sort";
    button.textContent = column.title + (state.column === index ? (state.descending ? " ▼" : " ▲") : "");
    cell.setAttribute("aria-sort", state.column === index ? (state.descending ? "descending" : "ascending") : "none");
    button.addEventListener("click", () => {
      element._sort = { column: index, descending: state.column === index ? !state.descending : index >= firstNumeric && firstNumeric >= 0 };
      renderTable(element, panel, results);
    });
    cell.append(button);
    head.append(cell);
  });
  const body = tableElement.createTBody();
  for (const row of sorted) {
    const tr = body.insertRow();
    row.forEach((value, index) => {
      const cell = tr.insertCell();
      cell.textContent = value.text;
      if (columns[index].numeric) {
        cell.className = "number";
        if (value.color && (panel.options?.thresholds?.length || panel.options?.value_mappings?.length)) cell.style.color = value.color;
      }
    });
  }
  const wrapper = document.createElement("div");
  wrapper.className = "table-scroll";
  wrapper.append(tableElement);
  element.replaceChildren(wrapper);
}
