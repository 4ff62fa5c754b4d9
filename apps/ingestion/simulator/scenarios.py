"""Demo scenarios: each turns simulated time into records shaped like the ingest endpoint's JSON body.

A record is a plain dict: {"time": "<ISO 8601 UTC with Z>", <labels as strings>, <measures as numbers>}.
Every scenario is deterministic for a given seed and sequence of calls, so demos and tests are reproducible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Protocol

Record = dict[str, str | int | float]

SCENARIO_NAMES: tuple[str, ...] = ("factory", "marketing", "business")
DEFAULT_DEVICES = 100
DEFAULT_SAMPLE_INTERVAL_SECONDS = 1.0
# About two failures per simulated hour across the default fleet: visible in a short demo, rare per device.
DEFAULT_FAULTS_PER_DEVICE_HOUR = 0.02
# Web traffic dwarfs ERP documents; these shares split --rate between whichever event scenarios are selected.
EVENT_RATE_SHARES: dict[str, float] = {"marketing": 0.85, "business": 0.15}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_MS_PER_HOUR = 3_600_000
_MS_PER_DAY = 86_400_000


class Scenario(Protocol):
    """A seeded stream of records for one source."""

    name: str
    source_slug: str

    def expected_rate(self, *, at: datetime) -> float:
        """Mean records per second of simulated time around `at`."""
        ...

    def records_for_tick(self, *, at: datetime, tick_seconds: float) -> list[Record]:
        """Records whose times fall in [at, at + tick_seconds), oldest first."""
        ...


def scenario_names_parse(*, values: Sequence[str]) -> list[str]:
    """Expand 'all' and comma lists into known scenario names in canonical order; ValueError on unknown names."""
    requested: set[str] = set()
    for value in values:
        for name in (part.strip().lower() for part in value.split(",")):
            if not name:
                continue
            if name == "all":
                requested.update(SCENARIO_NAMES)
            elif name in SCENARIO_NAMES:
                requested.add(name)
            else:
                raise ValueError(f"Unknown scenario {name!r}; choose from {', '.join(SCENARIO_NAMES)} or all.")
    if not requested:
        raise ValueError(f"No scenario given; choose from {', '.join(SCENARIO_NAMES)} or all.")
    return [name for name in SCENARIO_NAMES if name in requested]


def scenarios_build(
    *,
    names: Sequence[str],
    seed: int,
    rate: float,
    devices: int = DEFAULT_DEVICES,
    sample_interval_seconds: float = DEFAULT_SAMPLE_INTERVAL_SECONDS,
    faults_per_device_hour: float = DEFAULT_FAULTS_PER_DEVICE_HOUR,
) -> list[Scenario]:
    """Create the named scenarios; `rate` (records/s, daily mean) is shared by marketing and business."""
    names = scenario_names_parse(values=names)
    selected_share = sum(EVENT_RATE_SHARES[name] for name in names if name in EVENT_RATE_SHARES)
    scenarios: list[Scenario] = []
    for name in names:
        if name == "factory":
            scenarios.append(
                FactoryScenario(
                    seed=seed,
                    devices=devices,
                    sample_interval_seconds=sample_interval_seconds,
                    faults_per_device_hour=faults_per_device_hour,
                )
            )
        elif name == "marketing":
            scenarios.append(MarketingScenario(seed=seed, mean_rate=rate * EVENT_RATE_SHARES[name] / selected_share))
        elif name == "business":
            scenarios.append(BusinessScenario(seed=seed, mean_rate=rate * EVENT_RATE_SHARES[name] / selected_share))
    return scenarios


def _epoch_ms(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError(f"Simulated time must be timezone-aware (UTC), got naive {at.isoformat()}.")
    return (at - _EPOCH) // _MILLISECOND


def _iso_from_epoch_ms(epoch_ms: int) -> str:
    moment = _EPOCH + epoch_ms * _MILLISECOND
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


def _local_hour(epoch_ms: int, utc_offset_hours: int) -> float:
    return ((epoch_ms + utc_offset_hours * _MS_PER_HOUR) / _MS_PER_HOUR) % 24


def _local_weekday(epoch_ms: int, utc_offset_hours: int) -> int:
    # 1970-01-01 was a Thursday (Monday is 0).
    return ((epoch_ms + utc_offset_hours * _MS_PER_HOUR) // _MS_PER_DAY + 3) % 7


def _normalized(values: Sequence[float]) -> tuple[float, ...]:
    # Profiles average 1.0 so a scenario's configured rate is its long-run mean.
    mean = sum(values) / len(values)
    return tuple(value / mean for value in values)


def _hourly_profile_at(profile: Sequence[float], hour: float) -> float:
    lower = int(hour) % 24
    fraction = hour - math.floor(hour)
    return profile[lower] + (profile[(lower + 1) % 24] - profile[lower]) * fraction


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(accumulate(weights))


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:
        # The normal approximation is accurate here and avoids a loop proportional to the mean.
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    threshold = math.exp(-mean)
    count = 0
    product = rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def _mean_reverting_step(rng: random.Random, value: float, *, dt: float, time_constant: float, spread: float) -> float:
    # Exact Ornstein-Uhlenbeck update: stays stable and keeps `spread` as its long-run std for any dt.
    decay = math.exp(-dt / time_constant)
    return value * decay + spread * math.sqrt(1 - decay * decay) * rng.gauss(0.0, 1.0)


# --- factory ---------------------------------------------------------------------------------------------------

_DEVICE_KINDS = ("press", "pump", "mixer", "compressor", "lathe")
_FACILITIES = ("f1", "f2", "f3", "f4", "f5")
_AMBIENT_TEMPERATURE_C = 24.0
_HEALTHY = "healthy"
_DRIFTING = "drifting"
_FAILING = "failing"
_DOWN = "down"
_OVERHEATING = "overheating"
_BEARING_WEAR = "bearing_wear"


@dataclass
class _Device:
    """One machine's identity, operating point and fault state."""

    name: str
    facility: str
    phase_ms: int
    temperature_base: float
    vibration_base: float
    pressure_base: float
    flow_base: float
    power_base: float
    temperature_walk: float = 0.0
    vibration_walk: float = 0.0
    pressure_walk: float = 0.0
    flow_walk: float = 0.0
    power_walk: float = 0.0
    condition: str = _HEALTHY
    condition_started_ms: int = 0
    condition_ends_ms: int = 0
    drift_kind: str = _OVERHEATING
    warmup_offset: float = 0.0
    last_temperature: float = 0.0
    last_pressure: float = 0.0
    last_sample_ms: int | None = None
    next_sample_ms: int | None = None


class FactoryScenario:
    """Machines in facilities f1..f5 reporting every interval; now and then one drifts, fails, then recovers."""

    name = "factory"
    source_slug = "demo-factory"

    def __init__(
        self,
        *,
        seed: int,
        devices: int = DEFAULT_DEVICES,
        sample_interval_seconds: float = DEFAULT_SAMPLE_INTERVAL_SECONDS,
        faults_per_device_hour: float = DEFAULT_FAULTS_PER_DEVICE_HOUR,
    ) -> None:
        if devices < 1:
            raise ValueError(f"devices must be at least 1, got {devices}.")
        if sample_interval_seconds < 0.001:
            raise ValueError(f"sample_interval_seconds must be at least 0.001, got {sample_interval_seconds}.")
        if faults_per_device_hour < 0:
            raise ValueError(f"faults_per_device_hour must not be negative, got {faults_per_device_hour}.")
        self._rng = random.Random(f"{seed}:factory")
        self._interval_ms = round(sample_interval_seconds * 1000)
        self._faults_per_device_second = faults_per_device_hour / 3600
        number_width = max(3, len(str(devices)))
        self._devices = [self._device_create(index, number_width) for index in range(devices)]

    def _device_create(self, index: int, number_width: int) -> _Device:
        rng = self._rng
        return _Device(
            name=f"{rng.choice(_DEVICE_KINDS)}-{index + 1:0{number_width}d}",
            # Round-robin so every facility has machines as soon as there are five.
            facility=_FACILITIES[index % len(_FACILITIES)],
            # Real devices are not synchronised; a fixed offset keeps each one's own spacing regular.
            phase_ms=rng.randrange(self._interval_ms),
            temperature_base=rng.uniform(63.0, 73.0),
            vibration_base=rng.uniform(1.3, 2.8),
            pressure_base=rng.uniform(5.5, 6.5),
            flow_base=rng.uniform(60.0, 180.0),
            power_base=rng.uniform(12.0, 55.0),
        )

    def sample_interval_set(self, *, seconds: float) -> None:
        """Sample every `seconds` from now on, with the same machines and their state (history is written coarser
        further back; the machines and their names stay those of the seed)."""
        if seconds < 0.001:
            raise ValueError(f"sample interval must be at least 0.001 s, got {seconds}.")
        self._interval_ms = round(seconds * 1000)
        for device in self._devices:
            device.next_sample_ms = None  # resume at the next instant of the new spacing

    def expected_rate(self, *, at: datetime) -> float:
        """One record per device per sample interval, at any time of day."""
        return len(self._devices) * 1000 / self._interval_ms

    def records_for_tick(self, *, at: datetime, tick_seconds: float) -> list[Record]:
        """One record per device for every sample instant in [at, at + tick_seconds), oldest first."""
        window_start = _epoch_ms(at)
        window_end = window_start + round(tick_seconds * 1000)
        due: list[tuple[int, int]] = []
        for index, device in enumerate(self._devices):
            if device.next_sample_ms is None or device.next_sample_ms < window_start:
                # First call, or the caller skipped ahead: resume at the device's next regular instant.
                device.next_sample_ms = window_start + (device.phase_ms - window_start) % self._interval_ms
            while device.next_sample_ms < window_end:
                due.append((device.next_sample_ms, index))
                device.next_sample_ms += self._interval_ms
        due.sort()
        return [self._sample(self._devices[index], sample_ms) for sample_ms, index in due]

    def _sample(self, device: _Device, sample_ms: int) -> Record:
        rng = self._rng
        dt = self._interval_ms / 1000 if device.last_sample_ms is None else (sample_ms - device.last_sample_ms) / 1000
        device.last_sample_ms = sample_ms
        self._condition_advance(device, sample_ms, dt)

        # Ambient heat peaks mid-afternoon (UTC) and shifts run a little harder in the day.
        daily = math.sin(2 * math.pi * (_local_hour(sample_ms, 0) - 9) / 24)
        load = 1 + 0.08 * daily
        device.temperature_walk = _mean_reverting_step(
            rng, device.temperature_walk, dt=dt, time_constant=600, spread=1.2
        )
        device.vibration_walk = _mean_reverting_step(rng, device.vibration_walk, dt=dt, time_constant=300, spread=0.25)
        device.pressure_walk = _mean_reverting_step(rng, device.pressure_walk, dt=dt, time_constant=300, spread=0.15)
        device.flow_walk = _mean_reverting_step(rng, device.flow_walk, dt=dt, time_constant=300, spread=3.0)
        device.power_walk = _mean_reverting_step(rng, device.power_walk, dt=dt, time_constant=300, spread=1.0)
        device.warmup_offset *= math.exp(-dt / 300)

        normal_temperature = device.temperature_base + 4 * daily
        temperature = normal_temperature + device.temperature_walk + device.warmup_offset + rng.gauss(0, 0.3)
        vibration = device.vibration_base + device.vibration_walk + rng.gauss(0, 0.08)
        pressure = device.pressure_base + device.pressure_walk + rng.gauss(0, 0.03)
        flow = device.flow_base * load + device.flow_walk + rng.gauss(0, 1.0)
        power = device.power_base * load + device.power_walk + rng.gauss(0, 0.3)

        if device.condition == _DRIFTING:
            drift_ms = device.condition_ends_ms - device.condition_started_ms
            progress = (sample_ms - device.condition_started_ms) / drift_ms
            # Wear accelerates: barely visible at first, obvious shortly before the failure.
            severity = min(1.0, max(0.0, progress)) ** 2
            if device.drift_kind == _OVERHEATING:
                temperature += 22 * severity
                vibration += 1.0 * severity
                power += 0.15 * device.power_base * severity
                flow -= 0.2 * device.flow_base * severity
            else:
                vibration += 7 * severity
                temperature += 9 * severity
                power += 0.1 * device.power_base * severity
        elif device.condition == _FAILING:
            overheating = device.drift_kind == _OVERHEATING
            temperature = normal_temperature + (28 if overheating else 14) + abs(rng.gauss(0, 3))
            vibration = (9 if overheating else 18) + abs(rng.gauss(0, 4))
            pressure = device.pressure_base + rng.gauss(0, 1.2)
            flow = device.flow_base * rng.uniform(0.3, 1.1)
            power = device.power_base * (1.3 + abs(rng.gauss(0, 0.2)))
        elif device.condition == _DOWN:
            seconds_down = (sample_ms - device.condition_started_ms) / 1000
            temperature = (
                _AMBIENT_TEMPERATURE_C
                + (device.last_temperature - _AMBIENT_TEMPERATURE_C) * math.exp(-seconds_down / 600)
                + rng.gauss(0, 0.2)
            )
            vibration = abs(rng.gauss(0.02, 0.01))
            pressure = 0.2 + (device.last_pressure - 0.2) * math.exp(-seconds_down / 60) + rng.gauss(0, 0.02)
            flow = 0.0
            # Controllers and sensors still draw a trickle while the machine is stopped.
            power = abs(rng.gauss(0.03, 0.02))

        device.last_temperature = temperature
        device.last_pressure = pressure
        return {
            "time": _iso_from_epoch_ms(sample_ms),
            "device": device.name,
            "facility": device.facility,
            "temperature": round(temperature, 2),
            "vibration": round(max(0.01, vibration), 3),
            "pressure": round(max(0.0, pressure), 3),
            "flow": round(max(0.0, flow), 1),
            "power": round(max(0.0, power), 2),
        }

    def _condition_advance(self, device: _Device, sample_ms: int, dt: float) -> None:
        rng = self._rng
        if device.condition == _HEALTHY:
            if rng.random() < -math.expm1(-self._faults_per_device_second * dt):
                device.condition = _DRIFTING
                device.drift_kind = rng.choice((_OVERHEATING, _BEARING_WEAR))
                device.condition_started_ms = sample_ms
                device.condition_ends_ms = sample_ms + round(rng.uniform(15, 45) * 60_000)
        elif sample_ms >= device.condition_ends_ms:
            if device.condition == _DRIFTING:
                device.condition = _FAILING
                device.condition_ends_ms = sample_ms + round(rng.uniform(10, 40) * 1000)
            elif device.condition == _FAILING:
                device.condition = _DOWN
                device.condition_ends_ms = sample_ms + round(rng.uniform(5, 20) * 60_000)
            else:
                device.condition = _HEALTHY
                # A restarted machine starts cold and warms back up to its operating point.
                daily = math.sin(2 * math.pi * (_local_hour(sample_ms, 0) - 9) / 24)
                device.warmup_offset = device.last_temperature - (device.temperature_base + 4 * daily)
            device.condition_started_ms = sample_ms


# --- event scenarios -------------------------------------------------------------------------------------------


class _EventScenario:
    """Shared machinery for scenarios whose record count per tick follows a time-of-day rate."""

    name: str
    source_slug: str

    def __init__(self, *, seed: int, mean_rate: float) -> None:
        if mean_rate < 0:
            raise ValueError(f"mean_rate must not be negative, got {mean_rate}.")
        self.mean_rate = mean_rate
        self._rng = random.Random(f"{seed}:{self.name}")

    def expected_rate(self, *, at: datetime) -> float:
        """Mean records per second at `at`: the daily mean rate shaped by the time of day."""
        raise NotImplementedError

    def records_for_tick(self, *, at: datetime, tick_seconds: float) -> list[Record]:
        """A Poisson-distributed number of records spread over [at, at + tick_seconds), oldest first."""
        midpoint = at + timedelta(seconds=tick_seconds / 2)
        count = _poisson(self._rng, self.expected_rate(at=midpoint) * tick_seconds)
        return self.records_at(at=at, count=count, spread_seconds=tick_seconds)

    def records_at(self, *, at: datetime, count: int, spread_seconds: float = 1.0) -> list[Record]:
        """Exactly `count` records with times spread uniformly over [at, at + spread_seconds), oldest first.

        Times are distinct milliseconds while the spread has room: storage keeps one point per series and
        instant (as InfluxDB does), so two events of one series at one millisecond would be stored as one.
        """
        start_ms = _epoch_ms(at)
        spread_ms = max(1, round(spread_seconds * 1000))
        if count <= spread_ms:
            offsets = sorted(self._rng.sample(range(spread_ms), count))
        else:
            offsets = sorted(self._rng.randrange(spread_ms) for _ in range(count))
        return self._records_build(start_ms=start_ms, offsets_ms=offsets)

    def _records_build(self, *, start_ms: int, offsets_ms: list[int]) -> list[Record]:
        raise NotImplementedError


@dataclass(frozen=True)
class _Country:
    code: str
    utc_offset_hours: int
    share: float


# Visits per local hour 00..23: a night trough, a lunchtime bump and an evening peak.
# fmt: off
_WEB_TRAFFIC_BY_HOUR = _normalized((
    0.35, 0.25, 0.18, 0.14, 0.13, 0.17, 0.30, 0.55, 0.80, 0.95, 1.00, 1.05,  # 00-11
    1.15, 1.10, 1.00, 1.00, 1.05, 1.15, 1.30, 1.50, 1.65, 1.60, 1.20, 0.70,  # 12-23
))
# fmt: on
_COUNTRIES = (
    _Country("US", -5, 0.35),
    _Country("DE", 1, 0.2),
    _Country("GB", 0, 0.15),
    _Country("FR", 1, 0.12),
    _Country("NL", 1, 0.08),
    _Country("JP", 9, 0.10),
)
_SEGMENTS = ("b2c", "b2b", "enterprise")
# Business buyers browse in office hours; consumers dominate evenings and nights.
_SEGMENT_WEIGHTS_OFFICE_HOURS = _cumulative((0.6, 0.3, 0.1))
_SEGMENT_WEIGHTS_OFF_HOURS = _cumulative((0.85, 0.12, 0.03))
_CHANNELS = ("web", "ios", "android")
_CHANNEL_WEIGHTS = {
    "b2c": _cumulative((0.45, 0.32, 0.23)),
    "b2b": _cumulative((0.8, 0.12, 0.08)),
    "enterprise": _cumulative((0.9, 0.06, 0.04)),
}
_EVENTS = ("page_view", "add_to_cart", "purchase", "signup")
_EVENT_WEIGHTS = {
    "b2c": _cumulative((0.86, 0.08, 0.035, 0.025)),
    "b2b": _cumulative((0.9, 0.05, 0.02, 0.03)),
    "enterprise": _cumulative((0.93, 0.03, 0.01, 0.03)),
}
# (median, log-space sigma) of a purchase amount per segment: many small baskets, a long tail of big deals.
_PURCHASE_AMOUNTS = {"b2c": (48.0, 0.75), "b2b": (380.0, 0.9), "enterprise": (5200.0, 1.0)}


class MarketingScenario(_EventScenario):
    """Web and app events: page views dominate, a few per cent purchase; traffic follows each country's day."""

    name = "marketing"
    source_slug = "demo-marketing"

    def expected_rate(self, *, at: datetime) -> float:
        """Daily mean rate shaped by each country's local time of day."""
        epoch_ms = _epoch_ms(at)
        return self.mean_rate * sum(self._country_activity(country, epoch_ms) for country in _COUNTRIES)

    @staticmethod
    def _country_activity(country: _Country, epoch_ms: int) -> float:
        return country.share * _hourly_profile_at(_WEB_TRAFFIC_BY_HOUR, _local_hour(epoch_ms, country.utc_offset_hours))

    def _records_build(self, *, start_ms: int, offsets_ms: list[int]) -> list[Record]:
        rng = self._rng
        # Who is awake changes slowly, so weigh countries once per call rather than per record.
        country_weights = _cumulative([self._country_activity(country, start_ms) for country in _COUNTRIES])
        office_hours = {
            country.code: 9 <= _local_hour(start_ms, country.utc_offset_hours) < 18
            and _local_weekday(start_ms, country.utc_offset_hours) < 5
            for country in _COUNTRIES
        }
        records: list[Record] = []
        for offset in offsets_ms:
            country = rng.choices(_COUNTRIES, cum_weights=country_weights)[0]
            in_office_hours = office_hours[country.code]
            segment_weights = _SEGMENT_WEIGHTS_OFFICE_HOURS if in_office_hours else _SEGMENT_WEIGHTS_OFF_HOURS
            segment = rng.choices(_SEGMENTS, cum_weights=segment_weights)[0]
            event = rng.choices(_EVENTS, cum_weights=_EVENT_WEIGHTS[segment])[0]
            record: Record = {
                "time": _iso_from_epoch_ms(start_ms + offset),
                "event": event,
                "segment": segment,
                "channel": rng.choices(_CHANNELS, cum_weights=_CHANNEL_WEIGHTS[segment])[0],
                "country": country.code,
                "count": 1,
            }
            if event == "purchase":
                median, sigma = _PURCHASE_AMOUNTS[segment]
                record["amount"] = round(max(1.0, rng.lognormvariate(math.log(median), sigma)), 2)
            records.append(record)
        return records


@dataclass(frozen=True)
class _Region:
    name: str
    utc_offset_hours: int
    share: float
    currency_weights: tuple[float, float]


@dataclass(frozen=True)
class _ProductLine:
    name: str
    share: float
    minimum_quantity: int
    mean_extra_quantity: float
    unit_price_median: float
    unit_price_sigma: float
    invoice_median: float
    invoice_sigma: float


# ERP documents per local hour 00..23 and per weekday Mon..Sun: office hours, a lunch dip, quiet weekends.
# fmt: off
_OFFICE_ACTIVITY_BY_HOUR = _normalized((
    0.02, 0.02, 0.02, 0.02, 0.02, 0.03, 0.08, 0.35, 0.90, 1.30, 1.40, 1.35,  # 00-11
    0.90, 1.10, 1.35, 1.30, 1.15, 0.80, 0.40, 0.20, 0.10, 0.06, 0.04, 0.03,  # 12-23
))
# fmt: on
_OFFICE_ACTIVITY_BY_WEEKDAY = _normalized((1.0, 1.05, 1.05, 1.0, 0.9, 0.12, 0.06))
_CURRENCIES = ("EUR", "USD")
_REGIONS = (
    _Region("emea", 1, 0.45, (0.88, 0.12)),
    _Region("amer", -5, 0.35, (0.03, 0.97)),
    _Region("apac", 8, 0.20, (0.3, 0.7)),
)
_PRODUCT_LINES = (
    _ProductLine("hardware", 0.3, 1, 4.0, 850.0, 0.35, 3500.0, 0.8),
    _ProductLine("software", 0.3, 1, 25.0, 120.0, 0.25, 2400.0, 0.9),
    _ProductLine("services", 0.25, 8, 32.0, 140.0, 0.15, 5000.0, 0.7),
    _ProductLine("spare_parts", 0.15, 1, 12.0, 35.0, 0.6, 450.0, 0.8),
)
_PRODUCT_LINE_WEIGHTS = _cumulative([line.share for line in _PRODUCT_LINES])
_KINDS = ("order", "invoice")
_KIND_WEIGHTS = _cumulative((0.55, 0.45))
_PAYMENT_TERMS_DAYS = (14, 30, 45, 60, 90)
_PAYMENT_TERMS_WEIGHTS = _cumulative((0.12, 0.5, 0.1, 0.22, 0.06))


class BusinessScenario(_EventScenario):
    """Orders and invoices from regional ERP systems, busiest in each region's office hours on weekdays."""

    name = "business"
    source_slug = "demo-business"

    def expected_rate(self, *, at: datetime) -> float:
        """Weekly mean rate shaped by each region's office hours and weekdays."""
        epoch_ms = _epoch_ms(at)
        return self.mean_rate * sum(self._region_activity(region, epoch_ms) for region in _REGIONS)

    @staticmethod
    def _region_activity(region: _Region, epoch_ms: int) -> float:
        hour = _local_hour(epoch_ms, region.utc_offset_hours)
        weekday = _local_weekday(epoch_ms, region.utc_offset_hours)
        return region.share * _hourly_profile_at(_OFFICE_ACTIVITY_BY_HOUR, hour) * _OFFICE_ACTIVITY_BY_WEEKDAY[weekday]

    def _records_build(self, *, start_ms: int, offsets_ms: list[int]) -> list[Record]:
        rng = self._rng
        region_weights = _cumulative([self._region_activity(region, start_ms) for region in _REGIONS])
        records: list[Record] = []
        for offset in offsets_ms:
            region = rng.choices(_REGIONS, cum_weights=region_weights)[0]
            line = rng.choices(_PRODUCT_LINES, cum_weights=_PRODUCT_LINE_WEIGHTS)[0]
            kind = rng.choices(_KINDS, cum_weights=_KIND_WEIGHTS)[0]
            record: Record = {
                "time": _iso_from_epoch_ms(start_ms + offset),
                "kind": kind,
                "region": region.name,
                "product_line": line.name,
                "currency": rng.choices(_CURRENCIES, weights=region.currency_weights)[0],
            }
            if kind == "order":
                quantity = line.minimum_quantity + int(rng.expovariate(1 / line.mean_extra_quantity))
                unit_price = rng.lognormvariate(math.log(line.unit_price_median), line.unit_price_sigma)
                volume_discount = rng.uniform(0.85, 1.0)
                record["amount"] = round(quantity * unit_price * volume_discount, 2)
                record["quantity"] = quantity
            else:
                amount = rng.lognormvariate(math.log(line.invoice_median), line.invoice_sigma)
                record["amount"] = round(max(1.0, amount), 2)
                record["days_to_due"] = rng.choices(_PAYMENT_TERMS_DAYS, cum_weights=_PAYMENT_TERMS_WEIGHTS)[0]
            records.append(record)
        return records
