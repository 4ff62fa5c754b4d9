// Source forms: mark fields with errors for assistive technology and put the focus on the first one.

let first = null;
for (const field of document.querySelectorAll(".source-form .field")) {
  const input = field.querySelector("input, select, textarea");
  if (!input) continue;
  const described = [field.querySelector(".field-error")?.id, field.querySelector(".helptext")?.id].filter(Boolean);
  if (described.length) input.setAttribute("aria-describedby", described.join(" "));
  if (field.classList.contains("has-error")) {
    input.setAttribute("aria-invalid", "true");
    first ??= input;
  }
}
(first ?? document.querySelector(".source-form input:not([type=hidden]), .source-form select"))?.focus();

for (const confirmForm of document.querySelectorAll("form[data-confirm]")) {
  confirmForm.addEventListener("submit", (event) => {
    if (!window.confirm(confirmForm.dataset.confirm)) event.preventDefault();
  });
}
