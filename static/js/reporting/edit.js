// The report editor: only the chosen dashboard's panel checkboxes show and are sent (a disabled fieldset's are not).
const dashboard = document.getElementById("dashboard");

function showPanelsOf(uid) {
  for (const picks of document.querySelectorAll(".panel-picks")) {
    const chosen = picks.dataset.dashboard === uid;
    picks.hidden = !chosen;
    picks.disabled = !chosen;
  }
}

if (dashboard) {
  dashboard.addEventListener("change", () => showPanelsOf(dashboard.value));
  showPanelsOf(dashboard.value);
}

// Recipients: only the chosen organisation's members and teams show and are sent (a new report picks its
// organisation; an existing one has a single list). A long list gets a filter box.
const organization = document.getElementById("organization");

function showRecipientsOf(slug) {
  for (const picks of document.querySelectorAll(".recipient-picks")) {
    const chosen = picks.dataset.organization === slug;
    picks.hidden = !chosen;
    picks.disabled = !chosen;
  }
}

if (organization) {
  organization.addEventListener("change", () => showRecipientsOf(organization.value));
  showRecipientsOf(organization.value);
}

for (const filter of document.querySelectorAll(".recipient-picks .picks-filter")) {
  filter.hidden = false;
  filter.addEventListener("input", () => {
    const text = filter.value.trim().toLowerCase();
    for (const label of filter.closest("fieldset").querySelectorAll(".picks label")) {
      label.hidden = text !== "" && !label.textContent.toLowerCase().includes(text) && !label.querySelector("input").checked;
    }
  });
}

// The schedule picker: the usual schedules (every day, weekday, week or month at a time) written to the cron field,
// which shows only for a custom schedule. A cron the picker cannot say opens as custom, untouched.
const cron = document.getElementById("cron");
const picker = document.getElementById("schedule-picker");
const frequency = document.getElementById("schedule-frequency");
const weekday = document.getElementById("schedule-weekday");
const monthDay = document.getElementById("schedule-day");
const clock = document.getElementById("schedule-time");
const cronField = document.getElementById("cron-field");

const pad = (number) => String(number).padStart(2, "0");

// "M H * * *" and the like; null for any other cron.
function scheduleOf(text) {
  const value = text.trim();
  if (!value) return { frequency: "" };
  const match = /^(\d{1,2}) (\d{1,2}) (\*|\d{1,2}) \* (\*|1-5|[0-7])$/.exec(value);
  if (!match) return null;
  const [, minute, hour, day, week] = match;
  if (Number(minute) > 59 || Number(hour) > 23) return null;
  const time = `${pad(hour)}:${pad(minute)}`;
  if (day === "*" && week === "*") return { frequency: "daily", time };
  if (day === "*" && week === "1-5") return { frequency: "weekdays", time };
  if (day === "*") return { frequency: "weekly", time, weekday: String(Number(week) % 7) };
  if (week === "*" && Number(day) >= 1 && Number(day) <= 31) return { frequency: "monthly", time, day };
  return null;
}

function cronOf() {
  const [hour, minute] = (clock.value || "07:00").split(":").map(Number);
  const at = `${minute} ${hour}`;
  switch (frequency.value) {
    case "daily": return `${at} * * *`;
    case "weekdays": return `${at} * * 1-5`;
    case "weekly": return `${at} * * ${weekday.value}`;
    case "monthly": return `${at} ${Math.min(Math.max(Number(monthDay.value) || 1, 1), 31)} * *`;
    default: return "";
  }
}

function showParts() {
  for (const part of picker.querySelectorAll("[data-when]")) {
    part.hidden = !part.dataset.when.split(" ").includes(frequency.value);
  }
  cronField.hidden = frequency.value !== "custom";
}

if (cron && picker) {
  const schedule = scheduleOf(cron.value);
  // A refused cron stays in view, as typed, with its error.
  const refused = cron.getAttribute("aria-invalid") === "true";
  if (schedule === null || refused) {
    frequency.value = "custom";
  } else {
    frequency.value = schedule.frequency;
    if (schedule.time) clock.value = schedule.time;
    if (schedule.weekday) weekday.value = schedule.weekday;
    if (schedule.day) monthDay.value = schedule.day;
  }
  picker.hidden = false;
  showParts();
  for (const input of [frequency, weekday, monthDay, clock]) {
    input.addEventListener("change", () => {
      if (frequency.value !== "custom") cron.value = cronOf();
      showParts();
    });
  }
}
