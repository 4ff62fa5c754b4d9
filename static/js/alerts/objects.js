// Create and edit forms of the contact point, silence, mute timing and notification policy pages. Each page embeds its objects
// as JSON (the API's shapes); a save calls the REST API and reloads the page, a refusal shows beside its field.

import { del, durationShort, errorShow, errorsClear, listParse, matchersFormat, matchersParse, patch, post, rowIds, rowPaths, statusSet } from "./forms.js";

const $ = (id) => document.getElementById(id);

function pageData(id) {
  const node = $(id);
  return node ? JSON.parse(node.textContent) : [];
}

function fieldError(field, message) {
  const error = new Error(message);
  error.body = { field, detail: `${field}: ${message}` };
  return error;
}

function failed(form, error) {
  if (!errorShow(form, error)) statusSet(error.message);
}

// A form in "edit" mode remembers the object's id; Cancel goes back to "new".
function editMode(form, { id, title, cancel }) {
  form.dataset.id = id ?? "";
  $(`${form.id}-title`).textContent = title;
  $(cancel).hidden = !id;
  form.closest("section").scrollIntoView({ block: "start" });
  form.querySelector("input:not([type=hidden]), select, textarea")?.focus();
}

function submitting(form, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorsClear(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await handler();
      window.location.reload();
    } catch (error) {
      failed(form, error);
    } finally {
      button.disabled = false;
    }
  });
}

async function confirmedDelete(url, question) {
  if (!window.confirm(question)) return;
  try {
    await del(url);
    window.location.reload();
  } catch (error) {
    statusSet(error.message);
  }
}

// ----- contact points -----

function contactPoints(form) {
  const byId = new Map(pageData("contact-points-data").map((item) => [String(item.id), item]));
  const kind = $("cp-kind");
  const showKind = () => {
    for (const node of form.querySelectorAll("[data-kinds]")) node.hidden = !node.dataset.kinds.split(" ").includes(kind.value);
  };
  kind.addEventListener("change", showKind);
  showKind();
  const reset = () => {
    form.reset();
    kind.disabled = false;
    showKind();
    editMode(form, { id: null, title: "New contact point", cancel: "cp-cancel" });
  };
  $("cp-cancel").addEventListener("click", reset);
  document.addEventListener("click", (event) => {
    const edit = event.target.closest("[data-edit-contact-point]");
    const remove = event.target.closest("[data-delete-contact-point]");
    if (remove) confirmedDelete(`/api/v1/contact-points/${remove.dataset.deleteContactPoint}/`, `Delete the contact point “${remove.dataset.name}”?`);
    if (!edit) return;
    const item = byId.get(edit.dataset.editContactPoint);
    form.reset();
    $("cp-name").value = item.name;
    kind.value = item.kind;
    kind.disabled = true; // the API keeps a contact point's kind
    $("cp-url").value = item.config.url ?? "";
    $("cp-asset-label").value = item.config.asset_label ?? "";
    $("cp-addresses").value = (item.config.addresses ?? []).join(", ");
    $("cp-secret").placeholder = item.has_secret ? "(unchanged)" : "";
    showKind();
    editMode(form, { id: item.id, title: `Edit “${item.name}”`, cancel: "cp-cancel" });
  });
  submitting(form, async () => {
    const config = {};
    if (["webhook", "cmms", "slack"].includes(kind.value)) config.url = $("cp-url").value.trim();
    if (["webhook", "cmms"].includes(kind.value) && $("cp-secret").value) config.secret = $("cp-secret").value;
    if (kind.value === "cmms") config.asset_label = $("cp-asset-label").value.trim() || "asset";
    if (kind.value === "email") config.addresses = listParse($("cp-addresses").value);
    const body = { name: $("cp-name").value.trim(), config };
    if (form.dataset.id) await patch(`/api/v1/contact-points/${form.dataset.id}/`, body);
    else await post("/api/v1/contact-points/", { ...body, kind: kind.value });
  });
}

// ----- silences -----

function localInput(iso) {
  const moment = new Date(iso);
  const shifted = new Date(moment.getTime() - moment.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

function silences(form) {
  const byId = new Map(pageData("silences-data").map((item) => [String(item.id), item]));
  $("silence-duration").addEventListener("change", (event) => {
    const hours = Number(event.target.value);
    if (!hours) return;
    const start = $("silence-starts").value ? new Date($("silence-starts").value) : new Date();
    $("silence-ends").value = localInput(new Date(start.getTime() + hours * 3600000).toISOString());
  });
  $("silence-cancel").addEventListener("click", () => {
    form.reset();
    editMode(form, { id: null, title: "New silence", cancel: "silence-cancel" });
  });
  document.addEventListener("click", (event) => {
    const edit = event.target.closest("[data-edit-silence]");
    if (!edit) return;
    const item = byId.get(edit.dataset.editSilence);
    $("silence-matchers").value = matchersFormat(item.matchers);
    $("silence-starts").value = localInput(item.starts_at);
    $("silence-ends").value = localInput(item.ends_at);
    $("silence-comment").value = item.comment ?? "";
    editMode(form, { id: item.id, title: "Edit silence", cancel: "silence-cancel" });
  });
  submitting(form, async () => {
    let matchers;
    try {
      matchers = matchersParse($("silence-matchers").value);
    } catch (error) {
      throw fieldError("matchers", error.message);
    }
    if (!$("silence-ends").value) throw fieldError("ends_at", "choose when the silence ends.");
    const body = { matchers, ends_at: new Date($("silence-ends").value).toISOString(), comment: $("silence-comment").value };
    if ($("silence-starts").value) body.starts_at = new Date($("silence-starts").value).toISOString();
    await post("/api/v1/silences/", body);
    // Editing replaces: the new silence is in force before the old one expires.
    if (form.dataset.id) await del(`/api/v1/silences/${form.dataset.id}/`);
  });
}

// ----- mute timings -----

// "22:00-24:00, 00:00-06:00" <-> [{start, end}]; empty is the whole day.
function spansParse(text) {
  const spans = [];
  for (const part of String(text ?? "").split(",")) {
    const trimmed = part.trim();
    if (!trimmed || /^all day$/i.test(trimmed)) continue;
    const found = /^(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})$/.exec(trimmed);
    if (!found) throw new Error(`"${trimmed}" is not a range such as 09:00-17:00.`);
    spans.push({ start: found[1].padStart(5, "0"), end: found[2].padStart(5, "0") });
  }
  return spans.length ? spans : [{ start: "00:00", end: "24:00" }];
}

function spansFormat(spans) {
  const whole = !spans?.length || (spans.length === 1 && spans[0].start === "00:00" && spans[0].end === "24:00");
  return whole ? "" : spans.map((span) => `${span.start}-${span.end}`).join(", ");
}

function muteTimings(form) {
  const byId = new Map(pageData("mute-timings-data").map((item) => [String(item.id), item]));
  const list = $("mute-intervals");
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

  // Each interval's fields answer for its index's paths (intervals[1].times[0].end), so a refusal lands there.
  const renumber = () => {
    [...list.children].forEach((row, index) => {
      row.querySelector("legend").textContent = `Interval ${index + 1}`;
      rowPaths(row, `intervals[${index}]`);
      rowIds(row, "mute", index);
      row.querySelector("[data-remove-interval]").hidden = list.children.length < 2;
    });
  };
  const addInterval = (interval = {}) => {
    const row = $("mute-interval-template").content.firstElementChild.cloneNode(true);
    const days = new Set(interval.weekdays ?? []);
    for (const box of row.querySelectorAll("input[name=weekdays]")) box.checked = days.has(box.value);
    row.querySelector("[data-name=times]").value = spansFormat(interval.times);
    row.querySelector("[data-name=timezone]").value = interval.timezone ?? browserZone;
    list.append(row);
    renumber();
    return row;
  };
  const reset = () => {
    form.reset();
    list.replaceChildren();
    addInterval();
    editMode(form, { id: null, title: "New mute timing", cancel: "mute-cancel" });
  };
  list.replaceChildren();
  addInterval();
  $("mute-add-interval").addEventListener("click", () => addInterval().querySelector("input").focus());
  list.addEventListener("click", (event) => {
    const remove = event.target.closest("[data-remove-interval]");
    if (!remove) return;
    remove.closest(".mute-interval").remove();
    renumber();
    list.querySelector("input")?.focus();
  });
  $("mute-cancel").addEventListener("click", reset);
  document.addEventListener("click", (event) => {
    const remove = event.target.closest("[data-delete-timing]");
    if (remove) confirmedDelete(`/api/v1/mute-timings/${remove.dataset.deleteTiming}/`, "Delete this mute timing?");
    const edit = event.target.closest("[data-edit-timing]");
    if (!edit) return;
    const item = byId.get(edit.dataset.editTiming);
    form.reset();
    $("mute-name").value = item.name;
    list.replaceChildren();
    for (const interval of item.intervals) addInterval(interval);
    editMode(form, { id: item.id, title: `Edit mute timing "${item.name}"`, cancel: "mute-cancel" });
  });
  submitting(form, async () => {
    const intervals = [...list.children].map((row, index) => {
      const weekdays = [...row.querySelectorAll("input[name=weekdays]:checked")].map((box) => box.value);
      if (!weekdays.length) throw fieldError(`intervals[${index}].weekdays`, "tick at least one day.");
      let times;
      try {
        times = spansParse(row.querySelector("[data-name=times]").value);
      } catch (error) {
        throw fieldError(`intervals[${index}].times`, error.message);
      }
      return { weekdays, times, timezone: row.querySelector("[data-name=timezone]").value.trim() || "UTC" };
    });
    const body = { name: $("mute-name").value.trim(), intervals };
    if (form.dataset.id) await patch(`/api/v1/mute-timings/${form.dataset.id}/`, body);
    else await post("/api/v1/mute-timings/", body);
  });
}

// ----- notification policies -----

function policies(form) {
  const byId = new Map(pageData("policies-data").map((item) => [String(item.id), item]));
  const reset = (title = "New policy") => {
    form.reset();
    editMode(form, { id: null, title, cancel: "policy-cancel" });
  };
  $("policy-cancel").addEventListener("click", () => reset());
  document.addEventListener("click", (event) => {
    const edit = event.target.closest("[data-edit-policy]");
    const child = event.target.closest("[data-child-policy]");
    const remove = event.target.closest("[data-delete-policy]");
    if (remove) confirmedDelete(`/api/v1/notification-policies/${remove.dataset.deletePolicy}/`, "Delete this policy and every policy under it?");
    if (child) {
      reset("New child policy");
      $("policy-parent").value = child.dataset.childPolicy;
    }
    if (!edit) return;
    const item = byId.get(edit.dataset.editPolicy);
    form.reset();
    $("policy-name").value = item.name ?? "";
    $("policy-parent").value = item.parent ?? "";
    $("policy-position").value = item.position ?? 0;
    $("policy-matchers").value = matchersFormat(item.matchers);
    $("policy-contact-point").value = item.contact_point ?? "";
    $("policy-group-by").value = (item.group_by ?? []).join(", ");
    $("policy-group-wait").value = durationShort(item.group_wait);
    $("policy-group-interval").value = durationShort(item.group_interval);
    $("policy-repeat-interval").value = durationShort(item.repeat_interval);
    $("policy-continue").checked = Boolean(item.continue_matching);
    const muted = new Set((item.mute_timings ?? []).map(String));
    for (const box of form.querySelectorAll("input[name=mute_timings]")) box.checked = muted.has(box.value);
    editMode(form, { id: item.id, title: "Edit policy", cancel: "policy-cancel" });
  });
  submitting(form, async () => {
    let matchers;
    try {
      matchers = matchersParse($("policy-matchers").value);
    } catch (error) {
      throw fieldError("matchers", error.message);
    }
    const body = {
      name: $("policy-name").value.trim(),
      parent: $("policy-parent").value ? Number($("policy-parent").value) : null,
      position: Number($("policy-position").value || 0),
      matchers,
      contact_point: $("policy-contact-point").value ? Number($("policy-contact-point").value) : null,
      group_by: listParse($("policy-group-by").value),
      continue_matching: $("policy-continue").checked,
      mute_timings: [...form.querySelectorAll("input[name=mute_timings]:checked")].map((box) => Number(box.value)),
    };
    for (const [key, id] of [["group_wait", "policy-group-wait"], ["group_interval", "policy-group-interval"], ["repeat_interval", "policy-repeat-interval"]]) {
      if ($(id).value.trim()) body[key] = $(id).value.trim();
    }
    if (form.dataset.id) await patch(`/api/v1/notification-policies/${form.dataset.id}/`, body);
    else await post("/api/v1/notification-policies/", body);
  });
}

const pages = { "contact-point-form": contactPoints, "silence-form": silences, "mute-form": muteTimings, "policy-form": policies };
for (const [id, setUp] of Object.entries(pages)) {
  const form = $(id);
  if (form) setUp(form);
}
