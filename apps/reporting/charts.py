"""Server-side charts as SVG, drawn from the query engine's numbers: lines over time, and the pies and bars of
reduced values (a slice or a bar per series, as the dashboard page draws them).

Written here rather than exported through plotly + kaleido: kaleido drives a headless Chromium at about 2 s a
figure, where this takes milliseconds, needs no browser, and gives the same bytes for the same data (PDF tests
and caches can rely on it). The charts are deliberately plain: axes, gridlines, one path per series, a legend,
the panel's thresholds where the page shows them (dashed lines, bar colours).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
LEGEND_MAX = 12


def _attribute(text: str) -> str:
    """`text` escaped for a double-quoted attribute (a colour from a panel's options)."""
    return escape(text, {'"': "&quot;"})


def _svg_open(width: int, height: int) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="DejaVu Sans, sans-serif" font-size="10">'
    )


def _nice_step(span: float, ticks: int, decimals: int | None = None) -> float:
    """A round step for about `ticks` ticks over `span`; with `decimals`, one the labels print exactly (a whole
    number of the last printed digit: no 2.5 with 0 decimals, whose labels would round into repeats, as the page's
    tickStep avoids)."""
    raw = span / max(ticks, 1)
    if decimals is not None:
        raw = max(raw, 10.0**-decimals)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if raw <= step * (1 + 1e-9) and (decimals is None or math.isclose(round(step, decimals), step)):
            return step
    return 10 * magnitude


def tick_label(value: float, decimals: int | None = None, unit: str = "") -> str:
    """An axis tick as the page's plotly axis prints it: `decimals` places (tickformat ",.Nf") and the unit as a
    suffix (ticksuffix)."""
    text = _number(value) if decimals is None else f"{value:,.{decimals}f}"
    return f"{text} {unit}" if unit else text


def _label_width(labels: Sequence[str]) -> float:
    """About how wide the longest of `labels` is at the charts' 10 px DejaVu Sans."""
    return 6.2 * max((len(label) for label in labels), default=0)


def _tick_margin(ticks: Sequence[tuple[float, str]]) -> int:
    """A value axis' margin: as wide as its longest tick label (plotly's automargin), at least 40 px."""
    return max(40, round(12 + _label_width([text for _, text in ticks])))


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f"{value:.2g}"
    return f"{value:,.6g}"


def threshold_color(value: float | None, thresholds: Sequence[Mapping[str, Any]] | None, fallback: str) -> str:
    """The colour of the highest threshold `value` reaches (a base step has value null), else `fallback`: the rule
    of thresholdColor in static/js/dashboards/values.js."""
    steps = [item for item in thresholds or () if isinstance(item, Mapping) and item.get("color")]
    steps.sort(key=lambda item: -math.inf if item.get("value") is None else float(item["value"]))
    color = fallback
    for step in steps:
        if value is not None and (step.get("value") is None or value >= float(step["value"])):
            color = str(step["color"])
    return color


def mapped_value(value: float | None, mappings: Sequence[Mapping[str, Any]] | None) -> Mapping[str, Any] | None:
    """The first of a panel's `value_mappings` that `value` matches (an exact value, or a range with optional ends),
    else None: mappedValue in static/js/dashboards/values.js."""
    if value is None:
        return None
    for mapping in mappings or ():
        if not isinstance(mapping, Mapping):
            continue
        if mapping.get("type") == "range":
            low, high = mapping.get("from"), mapping.get("to")
            if (low is None or value >= float(low)) and (high is None or value <= float(high)):
                return mapping
        else:
            try:
                if float(mapping.get("value")) == value:
                    return mapping
            except (TypeError, ValueError):
                continue
    return None


def displayed(value: float | None, options: Mapping[str, Any], fallback: str) -> tuple[str | None, str]:
    """How the dashboard page shows a panel's value (displayValue in static/js/dashboards/values.js): its value
    mapping's text (None: the number itself), and the mapping's colour, else its threshold's, else `fallback`."""
    mapping = mapped_value(value, options.get("value_mappings")) or {}
    color = mapping.get("color") or threshold_color(value, options.get("thresholds"), fallback)
    return (str(mapping["text"]) if mapping.get("text") else None), str(color)


def reduced_colors(panel_type: str, values: Sequence[float | None], options: Mapping[str, Any]) -> list[str]:
    """The colour of each of a panel's reduced values as the dashboard draws them: a pie's slices the palette's in
    order; a bar its value mapping's or reached threshold's colour, else the palette's."""
    palette = [PALETTE[index % len(PALETTE)] for index in range(len(values))]
    if panel_type == "pie":
        return palette
    return [displayed(value, options, fallback)[1] for value, fallback in zip(values, palette, strict=True)]


def threshold_lines(thresholds: Sequence[Mapping[str, Any]] | None) -> list[tuple[float, str]]:
    """(value, colour) of each threshold with a value: the dashed lines of a time series with `threshold_lines`."""
    return [
        (float(item["value"]), str(item.get("color") or "#d62728"))
        for item in thresholds or ()
        if isinstance(item, Mapping) and isinstance(item.get("value"), int | float) and math.isfinite(item["value"])
    ]


def _sparse(column: Sequence[float | None]) -> bool:
    """Whether a series is drawn with markers: fewer than 3 values, or most of them between gaps (isSparse in
    static/js/dashboards/panels.js, the dashboard page's rule)."""

    def present(index: int) -> bool:
        return 0 <= index < len(column) and column[index] is not None and math.isfinite(column[index])

    shown = [index for index in range(len(column)) if present(index)]
    isolated = sum(1 for index in shown if not present(index - 1) and not present(index + 1))
    return len(shown) < 3 or isolated * 2 > len(shown)


@dataclass(frozen=True)
class ChartSeries:
    """One line of a chart: its name, values (one per time, None for a gap), the value axis it is drawn against
    (`left` or `right`) and its colour (None: the palette's, by position)."""

    name: str
    values: list[float | None]
    axis: str = "left"
    color: str | None = None


@dataclass(frozen=True)
class _Axis:
    low: float
    high: float
    step: float

    @classmethod
    def over(
        cls,
        values: list[float],
        fixed_low: float | None = None,
        fixed_high: float | None = None,
        decimals: int | None = None,
    ) -> _Axis:
        """An axis over `values` whose free ends are rounded out to a nice step (one `decimals` prints exactly); a
        panel's `min`/`max` fix an end exactly (plotly's range with autorange on the other end only)."""
        low = fixed_low if fixed_low is not None else min(values, default=fixed_high)
        high = fixed_high if fixed_high is not None else max(values, default=fixed_low)
        if fixed_low is None and fixed_high is not None:
            low = min(low, high - 1)  # every value above the fixed top: an axis just below it
        if fixed_high is None and fixed_low is not None:
            high = max(high, low + 1)
        if low == high:
            low, high = low - 1, high + 1
        step = _nice_step(high - low, 5, decimals)
        return cls(
            low if fixed_low is not None else math.floor(low / step) * step,
            high if fixed_high is not None else math.ceil(high / step) * step,
            step,
        )

    def ticks(self) -> list[float]:
        """Multiples of the step inside the axis (a fixed end need not be one)."""
        first = math.ceil(self.low / self.step - 1e-9)
        count = math.floor(self.high / self.step + 1e-9) - first
        return [self.step * (first + index) for index in range(count + 1)]


TIME_TICKS_MAX = 8
# Steps between time ticks (seconds), finest first; a step of a day or more ticks local midnights.
_TIME_STEPS = (
    1,
    5,
    10,
    15,
    30,
    60,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86_400,
    2 * 86_400,
    7 * 86_400,
)


def _time_labels(first: float, span: float, x_of: Any, baseline: float, zone: ZoneInfo, width: float) -> list[str]:
    """Ticks under a plot at round times in `zone` (whole seconds, minutes or hours, local midnights: as plotly's
    date axis puts them), from `first` (epoch seconds) over `span` seconds, as many as fit without their labels
    touching, each label centred on its tick and kept inside the chart's `width`."""
    start = datetime.fromtimestamp(first, tz=zone)
    length = x_of(datetime.fromtimestamp(first + span, tz=zone)) - x_of(start)

    def label_format(step: float) -> str:
        if step >= 86_400:
            return "%d %b"
        if step < 60:
            return "%H:%M:%S"
        return "%H:%M" if span <= 86_400 else "%d %b %H:%M"

    def fits(step: float) -> bool:
        room = _label_width([start.strftime(label_format(step))]) + 16
        return span / step <= min(max(int(length // room), 1), TIME_TICKS_MAX)

    step = next((step for step in _TIME_STEPS if fits(step)), None)
    if step is None:  # more weeks than fit: whole weeks, as many as fit
        step = 7 * 86_400 * math.ceil(span / TIME_TICKS_MAX / (7 * 86_400))
    moments = []
    if step >= 86_400:  # local midnights, a whole number of days apart (23 or 25 hours across a DST change)
        day = start.date()
        while (moment := datetime(day.year, day.month, day.day, tzinfo=zone)).timestamp() <= first + span:
            if moment.timestamp() >= first:
                moments.append(moment)
            day += timedelta(days=step // 86_400)
    else:
        offset = start.utcoffset().total_seconds()
        tick = math.ceil((first + offset) / step) * step - offset
        while tick <= first + span:
            moments.append(datetime.fromtimestamp(tick, tz=zone))
            tick += step
    parts = []
    for moment in moments:
        x = x_of(moment)
        text = moment.strftime(label_format(step))
        half = _label_width([text]) / 2
        parts.append(f'<line x1="{x:.1f}" y1="{baseline}" x2="{x:.1f}" y2="{baseline + 4}" stroke="#444"/>')
        if half <= x <= width - half:
            parts.append(
                f'<text x="{x:.1f}" y="{baseline + 16}" text-anchor="middle" fill="#444">{escape(text)}</text>'
            )
    return parts


def line_chart_svg(
    *,
    times: list[datetime],
    series: Sequence[ChartSeries | tuple[str, list[float | None]]],
    zone: ZoneInfo,
    unit: str = "",
    unit_right: str = "",
    decimals: int | None = None,
    decimals_right: int | None = None,
    thresholds: Sequence[tuple[float, str]] = (),
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    width: int = 720,
    height: int = 270,
) -> str:
    """An SVG document of the series against time (gaps stay gaps), with `thresholds` (value, colour) as dashed
    lines, inside the left value axis (as plotly's autorange takes them in). Series on the `right` axis are scaled
    to an axis of their own, labelled on the right (a purchases count beside revenue in dollars drew as a flat line
    at zero on a shared axis). `bounds` fixes an axis' ends ({"left": (min, max), "right": ...}, None for automatic,
    the panel's min/max and min_right/max_right options); what lies outside them is clipped, as on the page. Ticks
    print `decimals` places (`decimals_right` on the right axis) and the unit as a suffix, as the page's axes do."""
    bounds = bounds or {}
    lines = [item if isinstance(item, ChartSeries) else ChartSeries(*item) for item in series]
    has_right = any(line.axis == "right" for line in lines) and any(line.axis != "right" for line in lines)
    top, bottom = 12, 40
    legend_rows = math.ceil(min(len(lines), LEGEND_MAX + 1) / 3) if len(lines) > 1 else 0
    total_height = height + legend_rows * 16
    plot_height = height - top - bottom
    parts = [_svg_open(width, total_height)]

    def finite(side: str) -> list[float]:
        return [
            value
            for line in lines
            if (line.axis == "right" and has_right) == (side == "right")
            for value in line.values
            if value is not None and math.isfinite(value)
        ]

    if not (finite("left") or finite("right")) or len(times) < 1:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#666">No data</text></svg>')
        return "".join(parts)
    left_low, left_high = bounds.get("left", (None, None))
    inside = [value for value, _ in thresholds if (left_low is None or value >= left_low)
              and (left_high is None or value <= left_high)]  # fmt: skip
    left_values = finite("left") or finite("right")  # only right-axis series: the left axis is theirs
    axes = {"left": _Axis.over(left_values + inside, left_low, left_high, decimals)}
    labels = {"left": [(tick, tick_label(tick, decimals, unit)) for tick in axes["left"].ticks()]}
    if has_right:
        axes["right"] = _Axis.over(finite("right") or left_values, *bounds.get("right", (None, None)), decimals_right)
        labels["right"] = [(tick, tick_label(tick, decimals_right, unit_right)) for tick in axes["right"].ticks()]
    # Margins as wide as the tick labels (plotly's automargin).
    left = _tick_margin(labels["left"])
    right = _tick_margin(labels["right"]) if has_right else 12
    plot_width = width - left - right
    first, last = times[0].timestamp(), times[-1].timestamp()
    span = max(last - first, 1.0)

    def x_of(moment: datetime) -> float:
        return left + (moment.timestamp() - first) / span * plot_width

    def y_of(value: float, side: str = "left") -> float:
        axis = axes[side]
        return top + (axis.high - value) / (axis.high - axis.low) * plot_height

    for tick, text in labels["left"]:
        y = y_of(tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_width}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 3:.1f}" text-anchor="end" fill="#444">{escape(text)}</text>')
    if has_right:  # labels only, no gridlines of its own (as the dashboard's right axis)
        for tick, text in labels["right"]:
            y = y_of(tick, "right")
            parts.append(
                f'<text x="{left + plot_width + 6}" y="{y + 3:.1f}" text-anchor="start" fill="#444">'
                f"{escape(text)}</text>"
            )
    parts.extend(_time_labels(first, span, x_of, top + plot_height, zone, width))
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_width}" height="{plot_height}" fill="none" stroke="#999"/>')
    # Named by its geometry: charts inlined in one document share an id only when they share the rectangle.
    clip_id = f"plot-{left}-{top}-{plot_width}-{plot_height}"
    clip = f'<rect x="{left}" y="{top}" width="{plot_width}" height="{plot_height}"/>'
    parts.append(f'<defs><clipPath id="{clip_id}">{clip}</clipPath></defs><g clip-path="url(#{clip_id})">')
    for value, color in thresholds:
        if value not in inside:
            continue
        y = y_of(value)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_width}" y2="{y:.1f}" stroke="{_attribute(color)}" '
            'stroke-width="1" stroke-dasharray="5 3"/>'
        )
    xs = [x_of(moment) for moment in times]
    colors = [_attribute(line.color or PALETTE[index % len(PALETTE)]) for index, line in enumerate(lines)]
    for line, color in zip(lines, colors, strict=True):
        side = "right" if line.axis == "right" and has_right else "left"
        commands, pen_down = [], False
        for x, value in zip(xs, line.values, strict=False):
            if value is None or not math.isfinite(value):
                pen_down = False
                continue
            commands.append(f"{'L' if pen_down else 'M'}{x:.1f} {y_of(value, side):.1f}")
            pen_down = True
        if any(command.startswith("L") for command in commands):
            parts.append(f'<path d="{" ".join(commands)}" fill="none" stroke="{color}" stroke-width="1.2"/>')
        if _sparse(line.values):
            # Points between gaps (a reading a minute in 30 s buckets) draw no line: markers, as the page shows.
            parts.extend(
                f'<circle cx="{x:.1f}" cy="{y_of(value, side):.1f}" r="1.8" fill="{color}"/>'
                for x, value in zip(xs, line.values, strict=False)
                if value is not None and math.isfinite(value)
            )
    parts.append("</g>")
    if legend_rows:
        for index, line in enumerate(lines[:LEGEND_MAX]):
            x = left + (index % 3) * (plot_width / 3)
            y = height + (index // 3) * 16
            name = line.name[:40] + (" (right axis)" if line.axis == "right" and has_right else "")
            parts.append(f'<rect x="{x:.1f}" y="{y - 8}" width="10" height="3" fill="{colors[index]}"/>')
            parts.append(f'<text x="{x + 14:.1f}" y="{y - 4}" fill="#222">{escape(name)}</text>')
        if len(lines) > LEGEND_MAX:
            y = height + (LEGEND_MAX // 3) * 16
            parts.append(f'<text x="{left}" y="{y - 4}" fill="#666">and {len(lines) - LEGEND_MAX} more</text>')
    parts.append("</svg>")
    return "".join(parts)


def _no_data(width: int, height: int) -> str:
    middle = f'x="{width / 2}" y="{height / 2}"'
    return f'{_svg_open(width, height)}<text {middle} text-anchor="middle" fill="#666">No data</text></svg>'


def pie_chart_svg(
    *, items: Sequence[tuple[str, float | None]], donut: bool = True, width: int = 720, height: int = 260
) -> str:
    """A slice per item, in the given order and the dashboard's palette, its share written on it (when there is room)
    and in the legend beside it. Like plotly's pie, items without a positive value get no slice (the legend says
    so); a donut unless `donut` is false."""
    total = sum(value for _, value in items if value is not None and math.isfinite(value) and value > 0)
    if total <= 0:
        return _no_data(width, height)
    radius = height / 2 - 12
    cx, cy = 12 + radius, height / 2
    hole = radius * 0.45 if donut else 0.0
    parts = [_svg_open(width, height)]
    angle = -math.pi / 2  # from twelve o'clock, clockwise, as plotly draws
    for index, (_, value) in enumerate(items):
        if value is None or not math.isfinite(value) or value <= 0:
            continue
        share = value / total
        color = PALETTE[index % len(PALETTE)]
        if share >= 0.999999:
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{radius:.1f}" fill="{color}"/>')
        else:
            end = angle + share * 2 * math.pi
            large = 1 if share > 0.5 else 0
            x0, y0 = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
            x1, y1 = cx + radius * math.cos(end), cy + radius * math.sin(end)
            parts.append(
                f'<path d="M{cx:.1f} {cy:.1f} L{x0:.2f} {y0:.2f} A{radius:.1f} {radius:.1f} 0 {large} 1 '
                f'{x1:.2f} {y1:.2f} Z" fill="{color}" stroke="#fff" stroke-width="1"/>'
            )
        if share >= 0.04:
            middle = angle + share * math.pi
            distance = (radius + hole) / 2 if donut else radius * 0.62
            parts.append(
                f'<text x="{cx + distance * math.cos(middle):.1f}" y="{cy + distance * math.sin(middle) + 3:.1f}" '
                f'text-anchor="middle" fill="#fff">{share * 100:.1f}%</text>'
            )
        angle += share * 2 * math.pi
    if donut:
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{hole:.1f}" fill="#fff"/>')
    legend_x = cx + radius + 32
    shown = list(enumerate(items))[: LEGEND_MAX + 3]
    for row, (index, (name, value)) in enumerate(shown):
        y = 20 + row * 15
        positive = value is not None and math.isfinite(value) and value > 0
        share = f"{value / total * 100:.1f}%" if positive else "no slice"
        parts.append(
            f'<rect x="{legend_x:.1f}" y="{y - 8}" width="10" height="10" fill="{PALETTE[index % len(PALETTE)]}"/>'
        )
        parts.append(f'<text x="{legend_x + 16:.1f}" y="{y + 1}" fill="#222">{escape(name[:48])} ({share})</text>')
    if len(items) > len(shown):
        y = 20 + len(shown) * 15
        parts.append(f'<text x="{legend_x:.1f}" y="{y + 1}" fill="#666">and {len(items) - len(shown)} more</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart_svg(
    *,
    items: Sequence[tuple[str, float | None, str]],
    horizontal: bool = False,
    unit: str = "",
    decimals: int | None = None,
    width: int = 720,
    height: int = 260,
) -> str:
    """A bar per item (name, value, colour), from zero, with its value text beside it: vertical bars with the names
    under them, or horizontal bars with the names on the left (`horizontal`). Items without a value get no bar.
    Values and ticks print `decimals` places and the unit, as the page's bars do."""
    values = [value for _, value, _ in items if value is not None and math.isfinite(value)]
    if not values:
        return _no_data(width, height)
    shown = list(items[:40])
    # From zero, like the dashboard's bars; all zero: an axis from 0 to 1.
    axis = _Axis.over([0.0, *values] if any(values) else [0.0, 1.0], decimals=decimals)
    low, high = axis.low, axis.high
    ticks = [(tick, tick_label(tick, decimals, unit)) for tick in axis.ticks()]
    if horizontal:
        height = max(height, 24 + 18 * len(shown))
        left, right, top, bottom = 150, 70, 8, 28
    else:
        left, right, top, bottom = _tick_margin(ticks), 12, 16, 56
    plot_width, plot_height = width - left - right, height - top - bottom
    parts = [_svg_open(width, height)]

    def scale(value: float, length: float) -> float:
        return (value - low) / (high - low) * length

    for tick, text in ticks:
        if horizontal:
            x = left + scale(tick, plot_width)
            parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_height}" stroke="#e5e5e5"/>')
            parts.append(
                f'<text x="{x:.1f}" y="{top + plot_height + 14}" text-anchor="middle" fill="#444">{escape(text)}</text>'
            )
        else:
            y = top + plot_height - scale(tick, plot_height)
            parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_width}" y2="{y:.1f}" stroke="#e5e5e5"/>')
            parts.append(f'<text x="{left - 6}" y="{y + 3:.1f}" text-anchor="end" fill="#444">{escape(text)}</text>')
    slot = (plot_height if horizontal else plot_width) / max(len(shown), 1)
    thickness = slot * 0.7
    for index, (name, value, color) in enumerate(shown):
        label = escape(name[:24] if not horizontal else name[:26])
        if horizontal:
            middle = top + slot * (index + 0.5)
            parts.append(f'<text x="{left - 6}" y="{middle + 3:.1f}" text-anchor="end" fill="#222">{label}</text>')
        else:
            middle = left + slot * (index + 0.5)
            parts.append(
                f'<text x="{middle:.1f}" y="{top + plot_height + 12}" text-anchor="end" fill="#222" '
                f'transform="rotate(-30 {middle:.1f} {top + plot_height + 12})">{label}</text>'
            )
        if value is None or not math.isfinite(value):
            continue
        zero, end = (
            scale(0.0, plot_width if horizontal else plot_height),
            scale(value, plot_width if horizontal else plot_height),
        )
        start, length = min(zero, end), abs(end - zero)
        text = escape(tick_label(value, decimals, unit))
        if horizontal:
            y = middle - thickness / 2
            parts.append(
                f'<rect x="{left + start:.1f}" y="{y:.1f}" width="{length:.1f}" height="{thickness:.1f}" '
                f'fill="{_attribute(color)}"/>'
            )
            parts.append(f'<text x="{left + max(zero, end) + 4:.1f}" y="{middle + 3:.1f}" fill="#222">{text}</text>')
        else:
            x = middle - thickness / 2
            y = top + plot_height - start - length
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{thickness:.1f}" height="{length:.1f}" '
                f'fill="{_attribute(color)}"/>'
            )
            above = top + plot_height - max(zero, end)
            if above - 3 < top + 10:  # no room above the bar: the value inside its top, as plotly's "auto"
                parts.append(
                    f'<text x="{middle:.1f}" y="{above + 12:.1f}" text-anchor="middle" fill="#fff">{text}</text>'
                )
            else:
                parts.append(
                    f'<text x="{middle:.1f}" y="{above - 3:.1f}" text-anchor="middle" fill="#222">{text}</text>'
                )
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_width}" height="{plot_height}" fill="none" stroke="#999"/>')
    if len(items) > len(shown):
        parts.append(
            f'<text x="{left}" y="{height - 4}" fill="#666">and {len(items) - len(shown)} more (see the table)</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def axis_bound(value: Any) -> float | None:
    """A panel's axis or colour-scale min or max (the builder saves numbers; anything else leaves that end
    automatic)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def heatmap_scale(options: Mapping[str, Any]) -> str:
    """The plotly.js colour scale a heatmap panel draws with (heatmapPanel in panels.js): `color_scheme` inferno is
    plotly's Hot, viridis is Viridis, else the panel's `colorscale`, else Viridis."""
    scheme = options.get("color_scheme")
    return {"inferno": "Hot", "viridis": "Viridis"}.get(scheme) or str(options.get("colorscale") or "Viridis")


def scale_colors(name: Any, shares: Sequence[float]) -> list[str]:
    """The colours ("#rrggbb") of plotly.js's scale `name` at each share (0 to 1) of its range."""
    stops = _color_scale(name)
    return [_scale_color(stops, share) for share in shares]


def _color_scale(name: Any) -> list[tuple[float, tuple[int, int, int]]]:
    """One of plotly.js's named colour scales (what the dashboard's heatmap passes plotly as `colorscale`), as
    (position, rgb) stops; an unknown name is Viridis, plotly's default for heatmaps."""
    from plotly.colors import PLOTLY_SCALES, hex_to_rgb, unlabel_rgb

    scale = PLOTLY_SCALES.get(str(name)) or PLOTLY_SCALES["Viridis"]
    return [
        (float(position), hex_to_rgb(color) if color.startswith("#") else tuple(round(c) for c in unlabel_rgb(color)))
        for position, color in scale
    ]


def _scale_color(stops: list[tuple[float, tuple[int, int, int]]], share: float) -> str:
    share = min(max(share, 0.0), 1.0)
    for (low, low_rgb), (high, high_rgb) in itertools.pairwise(stops):
        if share <= high:
            weight = 0.0 if high == low else (share - low) / (high - low)
            rgb = [round(a + (b - a) * weight) for a, b in zip(low_rgb, high_rgb, strict=True)]
            return "#{:02x}{:02x}{:02x}".format(*rgb)
    return "#{:02x}{:02x}{:02x}".format(*stops[-1][1])


def _row_top(index: int, row_height: float, bottom: float) -> float:
    """Where row `index` starts when the first series is the bottom row (plotly's category axis)."""
    return bottom - row_height * (index + 1)


def _row_label(name: str, left: int, y: float, row_height: float) -> str:
    """A series' name left of its row, centred on it."""
    return (
        f'<text x="{left - 6}" y="{y + row_height / 2 + 3:.1f}" text-anchor="end" fill="#222">'
        f"{escape(name[:22])}</text>"
    )


def heatmap_svg(
    *,
    times: list[datetime],
    series: Sequence[ChartSeries],
    zone: ZoneInfo,
    scale: Any = "Viridis",
    low: float | None = None,
    high: float | None = None,
    unit: str = "",
    decimals: int | None = None,
    width: int = 720,
    height: int = 270,
) -> str:
    """A row per series (the first at the bottom, as plotly's category axis puts it) and a cell per time, coloured
    on `scale` from `low` to `high` (the panel's min and max; else the values' own), empty where there is no value,
    with a colour bar on the right (ticks with `decimals` places and the unit): the dashboard's heatmap panel."""
    rows = list(series[:40])
    values = [value for line in rows for value in line.values if value is not None and math.isfinite(value)]
    if not values or not times:
        return _no_data(width, height)
    low = min(values) if low is None else low
    high = max(values) if high is None else high
    if high <= low:
        high = low + 1
    left, right, top, bottom = 130, 80, 8, 28
    height = max(height, top + bottom + 12 * len(rows))
    plot_width, plot_height = width - left - right, height - top - bottom
    stops = _color_scale(scale)
    parts = [_svg_open(width, height)]
    first = times[0].timestamp()
    span = max(times[-1].timestamp() - first, 1.0)
    cell = plot_width / len(times)  # the chart's times are one bucket apart: a cell each, its time at its centre

    def x_of(moment: datetime) -> float:
        return left + cell / 2 + (moment.timestamp() - first) / span * (plot_width - cell)

    row_height = plot_height / len(rows)
    for index, line in enumerate(rows):
        y = _row_top(index, row_height, top + plot_height)
        parts.append(_row_label(line.name, left, y, row_height))
        for position, value in enumerate(line.values[: len(times)]):
            if value is None or not math.isfinite(value):
                continue
            color = _scale_color(stops, (value - low) / (high - low))
            parts.append(
                f'<rect x="{left + position * cell:.2f}" y="{y:.2f}" width="{cell + 0.05:.2f}" '
                f'height="{row_height + 0.05:.2f}" fill="{color}"/>'
            )
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_width}" height="{plot_height}" fill="none" stroke="#999"/>')
    parts.extend(_time_labels(first, span, x_of, top + plot_height, zone, width))
    # The colour bar: the scale in 40 steps, from `low` at the bottom to `high` at the top, with its ticks.
    bar_x, steps = left + plot_width + 12, 40
    for step in range(steps):
        y = top + plot_height - plot_height * (step + 1) / steps
        color = _scale_color(stops, (step + 0.5) / steps)
        parts.append(
            f'<rect x="{bar_x}" y="{y:.2f}" width="10" height="{plot_height / steps + 0.05:.2f}" fill="{color}"/>'
        )
    axis = _Axis.over([low, high], low, high, decimals)
    for tick in axis.ticks():
        y = top + plot_height - (tick - low) / (high - low) * plot_height
        parts.append(
            f'<text x="{bar_x + 14}" y="{y + 3:.1f}" fill="#444">{escape(tick_label(tick, decimals, unit))}</text>'
        )
    if len(series) > len(rows):
        parts.append(f'<text x="{left}" y="{height - 2}" fill="#666">and {len(series) - len(rows)} more</text>')
    parts.append("</svg>")
    return "".join(parts)


def state_of(value: float, options: Mapping[str, Any]) -> tuple[str, str | None]:
    """A value's state in a state timeline (stateFor and describe in static/js/dashboards/panels.js): the state of
    the highest `states` key not above it, else its value mapping's text or the number (0 decimals unless the panel
    says), with no colour of its own."""
    states = options.get("states") if isinstance(options.get("states"), Mapping) else {}
    keys = sorted((float(key), key) for key in states if _finite_key(key) and isinstance(states[key], Mapping))
    match = None
    for number, key in keys:
        if value >= number:
            match = key
    if match is not None:
        state = states[match]
        return str(state.get("label") or _number(float(match))), (str(state["color"]) if state.get("color") else None)
    text, _ = displayed(value, options, "")
    if text is None:
        decimals = options.get("decimals") if isinstance(options.get("decimals"), int) else 0
        text = f"{value:,.{decimals}f}" + (f" {options['unit']}" if options.get("unit") else "")
    return text, None


def _finite_key(key: Any) -> bool:
    try:
        return math.isfinite(float(key))
    except (TypeError, ValueError):
        return False


def state_timeline_svg(
    *,
    times: list[datetime],
    series: Sequence[ChartSeries],
    zone: ZoneInfo,
    end: datetime,
    options: Mapping[str, Any],
    width: int = 720,
    height: int = 200,
) -> str:
    """A band per series (the first at the bottom) of segments, each running from a value to the next value of
    another state (the last to `end`, the period's end), coloured by its state's colour, else the palette in the
    order states first appear; a legend of the states under it: the dashboard's state timeline."""
    rows = list(series[:40])
    if not times or not any(value is not None for line in rows for value in line.values):
        return _no_data(width, height)
    left, right, top, bottom = 130, 12, 8, 28
    height = max(height, top + bottom + 16 * len(rows))
    plot_width, plot_height = width - left - right, height - top - bottom
    first = times[0].timestamp()
    span = max(end.timestamp() - first, 1.0)

    def x_of(moment: datetime | float) -> float:
        seconds = moment if isinstance(moment, float) else moment.timestamp()
        return left + (seconds - first) / span * plot_width

    colors: dict[str, str] = {}
    palette_index = 0
    row_height = plot_height / len(rows)
    bands = []
    for index, line in enumerate(rows):
        y = _row_top(index, row_height, top + plot_height)
        bands.append(_row_label(line.name, left, y, row_height))
        # Each value's state once, then one segment per run of the same state, to the next run's first time.
        points = [
            (moment.timestamp(), *state_of(value, options))
            for moment, value in zip(times, line.values, strict=False)
            if value is not None and math.isfinite(value)
        ]
        runs = [list(run) for _, run in itertools.groupby(points, key=lambda point: point[1])]
        for number, run in enumerate(runs):
            start, label, color = run[0]
            if label not in colors:
                colors[label] = color or PALETTE[palette_index % len(PALETTE)]
                palette_index += 0 if color else 1
            stop = runs[number + 1][0][0] if number + 1 < len(runs) else end.timestamp()
            x0, x1 = x_of(start), x_of(max(stop, start + 1))
            bands.append(
                f'<rect x="{x0:.2f}" y="{y + row_height * 0.1:.2f}" width="{max(x1 - x0, 0.3):.2f}" '
                f'height="{row_height * 0.8:.2f}" fill="{_attribute(colors[label])}"/>'
            )
    legend_rows = math.ceil(min(len(colors), LEGEND_MAX) / 4)
    parts = [_svg_open(width, height + legend_rows * 16), *bands]
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_width}" height="{plot_height}" fill="none" stroke="#999"/>')
    parts.extend(_time_labels(first, span, x_of, top + plot_height, zone, width))
    for index, (label, color) in enumerate(list(colors.items())[:LEGEND_MAX]):
        x = left + (index % 4) * (plot_width / 4)
        y = height + 10 + (index // 4) * 16
        parts.append(f'<rect x="{x:.1f}" y="{y - 8}" width="10" height="10" fill="{_attribute(color)}"/>')
        parts.append(f'<text x="{x + 14:.1f}" y="{y + 1}" fill="#222">{escape(label[:30])}</text>')
    parts.append("</svg>")
    return "".join(parts)
