// Dark and light themes: the stored choice wins, otherwise the system's preference.

const KEY = "analytics.theme";

export function currentTheme() {
  const stored = localStorage.getItem(KEY);
  if (stored === "dark" || stored === "light") return stored;
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  document.dispatchEvent(new CustomEvent("themechange", { detail: { theme } }));
}

export function toggleTheme() {
  const next = currentTheme() === "dark" ? "light" : "dark";
  localStorage.setItem(KEY, next);
  applyTheme(next);
  return next;
}

export function initTheme(button) {
  applyTheme(currentTheme());
  window.matchMedia?.("(prefers-color-scheme: dark)").addEventListener?.("change", () => {
    if (!localStorage.getItem(KEY)) applyTheme(currentTheme());
  });
  if (button) {
    const label = () => {
      const dark = currentTheme() === "dark";
      button.textContent = dark ? "Light theme" : "Dark theme";
      button.setAttribute("aria-pressed", String(dark));
    };
    label();
    button.addEventListener("click", () => {
      toggleTheme();
      label();
    });
  }
}

// Colours for charts, read from the CSS variables of the current theme.
export function chartColors() {
  const style = getComputedStyle(document.documentElement);
  const value = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    fg: value("--fg", "#1b2430"),
    muted: value("--muted", "#5b6776"),
    grid: value("--border", "#d9dee5"),
    card: value("--card", "#fff"),
    ok: value("--ok", "#1a7f37"),
    warn: value("--warn", "#b7791f"),
    down: value("--down", "#c53030"),
  };
}
