// Series data: merging live deltas into what a panel shows, and trimming to what the panel can draw.

export function seriesKey(labels) {
  return JSON.stringify(Object.entries(labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

// Live deltas carry new points and updated last buckets: a point with a known timestamp replaces it.
export function mergeSeries(current, delta, maxPoints = Infinity) {
  const byKey = new Map(current.map((item) => [seriesKey(item.labels), { ...item, points: [...item.points] }]));
  for (const incoming of delta) {
    const key = seriesKey(incoming.labels);
    const existing = byKey.get(key);
    if (!existing) {
      byKey.set(key, { ...incoming, points: [...(incoming.points ?? [])] });
      continue;
    }
    const points = new Map(existing.points.map((point) => [Date.parse(point[0]), point]));
    for (const point of incoming.points ?? []) points.set(Date.parse(point[0]), point);
    existing.points = [...points.entries()].sort((a, b) => a[0] - b[0]).map(([, point]) => point);
    if (existing.points.length > maxPoints) existing.points = existing.points.slice(-maxPoints);
  }
  return [...byKey.values()];
}

// Points older than `start` scroll out of a live chart. A bucket (`bucketSeconds` wide) stays while any of it is
// inside the window: the one the window's start cuts is timed at its own start, before `start`, as the query API
// answers it, and the live feed sends its value again as the window slides.
export function dropBefore(series, start, bucketSeconds = null) {
  const limit = start.getTime() - (bucketSeconds ? bucketSeconds * 1000 : 0);
  const kept = bucketSeconds ? (time) => time > limit : (time) => time >= limit;
  return series.map((item) => ({ ...item, points: item.points.filter((point) => kept(Date.parse(point[0]))) }));
}

export function lastPointTime(series) {
  let last = null;
  for (const item of series) {
    const point = item.points?.[item.points.length - 1];
    if (point && (last === null || Date.parse(point[0]) > Date.parse(last))) last = point[0];
  }
  return last;
}

export function lastValue(item) {
  for (let index = (item?.points?.length ?? 0) - 1; index >= 0; index -= 1) {
    const value = item.points[index][1];
    if (value !== null && value !== undefined) return value;
  }
  return null;
}
