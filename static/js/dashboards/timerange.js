// Time ranges: relative ("-6h" .. "now") or absolute (ISO times), the presets of the picker, and labels.

export const PRESETS = [
  { start: "-5m", label: "Last 5 minutes" },
  { start: "-15m", label: "Last 15 minutes" },
  { start: "-1h", label: "Last hour" },
  { start: "-6h", label: "Last 6 hours" },
  { start: "-24h", label: "Last 24 hours" },
  { start: "-7d", label: "Last 7 days" },
  { start: "-30d", label: "Last 30 days" },
];

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
const RELATIVE = /^(?:now)?\s*-\s*(\d+)\s*([smhdw])$/;

export function isRelative(range) {
  return (range?.end ?? "now") === "now" && RELATIVE.test(range?.start ?? "");
}

// A time spec as a Date (relative to `now`).
export function resolveTime(value, now = new Date()) {
  if (value === "now" || value === undefined || value === null) return now;
  const relative = String(value).trim().match(RELATIVE);
  if (relative) return new Date(now.getTime() - Number(relative[1]) * UNIT_SECONDS[relative[2]] * 1000);
  const parsed = new Date(value);
  if (Number.isNaN(parsed.getTime())) throw new Error(`${value} is not a time`);
  return parsed;
}

export function rangeLabel(range) {
  const preset = PRESETS.find((item) => item.start === range.start && (range.end ?? "now") === "now");
  if (preset) return preset.label;
  if (isRelative(range)) return `Last ${range.start.replace(/^(?:now)?\s*-\s*/, "")}`;
  const format = (value) => {
    const date = resolveTime(value);
    return date.toISOString().replace("T", " ").slice(0, 16);
  };
  return `${format(range.start)} → ${range.end === "now" ? "now" : format(range.end)} UTC`;
}

export function durationSeconds(text) {
  const match = String(text ?? "").match(/^(\d+)\s*([smhdw])$/);
  return match ? Number(match[1]) * UNIT_SECONDS[match[2]] : null;
}

// "datetime-local" inputs speak local time without a zone.
export function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
