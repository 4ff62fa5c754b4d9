// The query inspector: for each request a panel made, the spec sent, the tier and bucket the server used,
// how long it took, and the raw response.

const MAX_RESPONSE_CHARACTERS = 50_000;

function entryElement(entry) {
  const section = document.createElement("section");
  section.className = "inspect-entry";
  const heading = document.createElement("h3");
  const reduce = entry.spec?.reduce ? ` · reduce ${entry.spec.reduce.calculation} / ${entry.spec.reduce.combination}` : "";
  heading.textContent = `Query ${entry.ref}${reduce}`;
  const facts = document.createElement("dl");
  facts.className = "inspect-facts";
  const response = entry.response ?? {};
  const seriesCount = (response.series ?? []).length;
  const pointCount = (response.series ?? []).reduce((total, item) => total + (item.points?.length ?? 0), 0);
  for (const [term, value] of [
    ["Tier", response.tier ?? "–"],
    ["Bucket used", response.bucket ?? "raw"],
    ["Bucket asked", entry.spec?.bucket ?? "auto"],
    ["Time", `${entry.milliseconds} ms`],
    ["Series / points", `${seriesCount} / ${pointCount}`],
    ["Reduced values", response.reduced ? String(response.reduced.length) : "–"],
  ]) {
    facts.append(Object.assign(document.createElement("dt"), { textContent: term }), Object.assign(document.createElement("dd"), { textContent: value, className: `inspect-${term.toLowerCase().replace(/[^a-z]+/g, "-")}` }));
  }
  const spec = document.createElement("details");
  spec.open = true;
  spec.append(Object.assign(document.createElement("summary"), { textContent: "Spec sent (POST /api/v1/query)" }), Object.assign(document.createElement("pre"), { className: "inspect-spec", textContent: JSON.stringify(entry.spec, null, 2) }));
  const raw = document.createElement("details");
  let text = JSON.stringify(entry.response, null, 2);
  if (text.length > MAX_RESPONSE_CHARACTERS) text = `${text.slice(0, MAX_RESPONSE_CHARACTERS)}\n… (${text.length.toLocaleString()} characters in all)`;
  raw.append(Object.assign(document.createElement("summary"), { textContent: "Raw response" }), Object.assign(document.createElement("pre"), { className: "inspect-response", textContent: text }));
  section.append(heading, facts, spec, raw);
  return section;
}

// Fills `container` with the entries ([{ref, spec, response, milliseconds}]); an empty list says so.
export function renderInspector(container, entries) {
  if (!entries?.length) {
    container.replaceChildren(Object.assign(document.createElement("p"), { className: "help", textContent: "No query has run yet." }));
    return;
  }
  container.replaceChildren(...entries.map(entryElement));
}

export function openInspector(dialog, title, entries) {
  dialog.querySelector(".inspector-title").textContent = `Inspect: ${title || "panel"}`;
  renderInspector(dialog.querySelector(".inspector-body"), entries);
  dialog.showModal();
}
