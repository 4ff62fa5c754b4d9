// Select a new token's secret when its field gets focus, so it can be copied at once (no inline handlers: CSP).
for (const field of document.querySelectorAll("[data-select-on-focus]")) {
  field.addEventListener("focus", () => field.select());
}
