// Select a new token's secret when its field gets focus or a click, so it can be copied at once (a file rather than
// an inline handler: the Content Security Policy refuses inline script). The field has autofocus, which may have
// focused it before this script ran, hence the first select().
for (const field of document.querySelectorAll("[data-select-on-focus]")) {
  field.addEventListener("focus", () => field.select());
  field.addEventListener("click", () => field.select());
  if (document.activeElement === field) field.select();
}
