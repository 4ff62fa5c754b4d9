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
