// Dashboard variables: "$name" in a query's filters is replaced by the variable's current value(s).

const REFERENCE = /^\$([A-Za-z_][A-Za-z0-9_]*)$/;

export const ALL = "__all__";

// Returns a copy of the query with variables substituted; a filter on a variable set to "all" (or empty) is dropped.
export function substituteVariables(query, values) {
  const copy = structuredClone(query ?? {});
  const filters = {};
  for (const [label, condition] of Object.entries(copy.filters ?? {})) {
    const reference = typeof condition === "string" ? condition.match(REFERENCE) : null;
    if (!reference) {
      if (Array.isArray(condition)) {
        const expanded = condition.flatMap((item) => {
          const inner = typeof item === "string" ? item.match(REFERENCE) : null;
          return inner ? [].concat(values[inner[1]] ?? []) : [item];
        });
        if (expanded.length && !expanded.includes(ALL)) filters[label] = expanded;
      } else {
        filters[label] = condition;
      }
      continue;
    }
    const value = values[reference[1]];
    const list = [].concat(value ?? []).filter((item) => item !== "" && item !== null);
    if (!list.length || list.includes(ALL)) continue;
    filters[label] = list.length === 1 ? list[0] : list;
  }
  copy.filters = filters;
  return copy;
}

export function variableNames(query) {
  const names = new Set();
  for (const condition of Object.values(query?.filters ?? {})) {
    for (const item of [].concat(condition)) {
      const match = typeof item === "string" ? item.match(REFERENCE) : null;
      if (match) names.add(match[1]);
    }
  }
  return [...names];
}
