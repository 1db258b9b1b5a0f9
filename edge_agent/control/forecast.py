"""What the planner expects the site to draw and generate, slot by slot, and how wrong it was.

A plan is only as good as the load it plans around. The site's base load (everything the
agent does not move) has a shape by time of day and by day type, and a level that drifts;
PV follows the sun, scaled by the clouds of the hour. Both are learned here from the site's
own measurements, with no clock of their own (every time is an argument) and no I/O:

- `BaseLoadForecast`: an exponentially weighted profile per (day type, slot of day), in the
  site's time zone, Monday to Saturday alike and Sunday apart (as EVN's calendar splits
  them; public holidays are not known and count as their weekday). Before a slot has
  history it is persistence (the last completed slot, or the latest samples); the profile
  takes over as days are seen. The last slot's departure from the profile is carried
  forward, fading by its own measured slot-to-slot correlation.
- `PvForecast`: Haurwitz clear-sky irradiance at the site's coordinates times the ratio of
  measured PV to clear sky over about the last hour of daylight, fading towards a typical
  day's ratio for later slots. Without coordinates, or before any PV is measured, it is 0.
- `ForecastError`: remembers what each plan forecast and scores it against what the slot
  turned out to be, so the agent can report each forecast's error.

The caller, each control cycle: `base.observe(now, incomer_kw - controlled_kw + pv_kw)` and
`pv.observe(now, pv_kw)` (PV is added back so that the sun does not shape the base profile);
at each plan: `values = f.forecast(slot_start, slots)` then `f.error.remember(slot_start,
values)`. `observe` is O(1); `forecast` is O(slots). Slots are aligned to the epoch, as the
planner's are. Powers are kW, averages over the slot.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TypedDict

from .solar import clear_sky_w_m2

__all__ = ["BaseLoadForecast", "ErrorSummary", "ForecastError", "PvForecast"]

_DAY_S = 86_400


def _timestamp(at: datetime) -> float:
    """Seconds since the epoch of an aware instant (a naive datetime names no instant)."""
    if at.tzinfo is None:
        raise ValueError("forecasts need aware datetimes (a naive one names no instant)")
    return at.timestamp()


def _slot_of(at: datetime, slot_s: int) -> int:
    """The index of the epoch-aligned slot holding `at`."""
    return math.floor(_timestamp(at) / slot_s)


def _check_slot_s(slot_s: int) -> None:
    if not 60 <= slot_s <= _DAY_S:
        raise ValueError(f"slot_s must be from 60 s to a day, not {slot_s}")


@dataclass(slots=True)
class _SlotMean:
    """The samples of the slot being observed."""

    slot: int
    total_kw: float = 0.0
    count: int = 0

    def add(self, kw: float) -> None:
        self.total_kw += kw
        self.count += 1

    @property
    def mean_kw(self) -> float:
        return self.total_kw / self.count


# The error -------------------------------------------------------------------------------


class ErrorSummary(TypedDict):
    """A forecast's record. `mae_kw` scores each slot's forecast from the plan made at that
    slot's start (one slot ahead: from what was measured up to the slot); `horizon_mae_kw`
    every forecast any remembered plan made for a slot that has since been measured. The
    errors are None until a slot is scored; `mae_kw / mean_kw` is the relative error."""

    mae_kw: float | None
    slots: int
    mean_kw: float | None
    """The realised average of the slots scored in `mae_kw`."""
    horizon_mae_kw: float | None
    horizon_pairs: int


class ForecastError:
    """What each plan forecast per slot, scored once the slot's average is measured.

    Only the first forecast for a (slot, lead) pair counts: a plan re-made within a slot
    does not get a second, better-informed chance at it. Memory is bounded by the horizon:
    a slot not measured within two slots of the latest plan is forgotten unscored.
    """

    def __init__(self, *, slot_s: int = 900) -> None:
        _check_slot_s(slot_s)
        self.slot_s = slot_s
        self._pending: dict[int, dict[int, float]] = {}
        """Target slot -> lead (slots between the plan's first slot and it) -> forecast kW."""
        self._first_abs_kw = 0.0
        self._first_realised_kw = 0.0
        self._first_n = 0
        self._horizon_abs_kw = 0.0
        self._horizon_n = 0

    def remember(self, start: datetime, values: Sequence[float]) -> None:
        """A plan from the slot holding `start` used `values` (kW per slot)."""
        first = _slot_of(start, self.slot_s)
        for stale in [slot for slot in self._pending if slot < first - 2]:
            del self._pending[stale]
        for lead, value in enumerate(values):
            self._pending.setdefault(first + lead, {}).setdefault(lead, float(value))

    def realise(self, slot_start: datetime, actual_kw: float) -> None:
        """The slot holding `slot_start` averaged `actual_kw`: score what was forecast."""
        leads = self._pending.pop(_slot_of(slot_start, self.slot_s), None)
        if leads is None:
            return
        if 0 in leads:
            self._first_abs_kw += abs(leads[0] - actual_kw)
            self._first_realised_kw += actual_kw
            self._first_n += 1
        for value in leads.values():
            self._horizon_abs_kw += abs(value - actual_kw)
            self._horizon_n += 1

    def summary(self) -> ErrorSummary:
        first, horizon = self._first_n, self._horizon_n
        return {
            "mae_kw": self._first_abs_kw / first if first else None,
            "slots": first,
            "mean_kw": self._first_realised_kw / first if first else None,
            "horizon_mae_kw": self._horizon_abs_kw / horizon if horizon else None,
            "horizon_pairs": horizon,
        }


# The base load ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Profile:
    """One (day type, slot of day): its weighted average and how many days it has seen."""

    kw: float
    days: int


@dataclass(frozen=True, slots=True)
class _Closed:
    """A completed slot: its average, and how far it was from what the profile expected."""

    slot: int
    mean_kw: float
    anomaly_kw: float | None
    own: bool
    """The anomaly is from the slot's own day type (a borrowed profile's says how the day
    types differ, not how a departure lasts)."""


@dataclass(slots=True)
class _Carry:
    """How much of one slot's departure from the profile the next slot keeps: the lag-1
    autocorrelation of the departures, exponentially weighted. A busier day stays busy for
    hours (near 1); meter noise does not (near 0)."""

    lagged_kw2: float = 0.0
    power_kw2: float = 0.0
    pairs: int = 0

    _PRIOR = 0.5
    """Used until enough pairs are seen: halfway between noise and a lasting shift."""
    _MIN_PAIRS = 8
    _WEIGHT = 0.02
    """About two days of slots."""

    def add(self, before_kw: float, after_kw: float) -> None:
        self.pairs += 1
        weight = max(self._WEIGHT, 1.0 / self.pairs)
        self.lagged_kw2 += weight * (before_kw * after_kw - self.lagged_kw2)
        self.power_kw2 += weight * (before_kw * before_kw - self.power_kw2)

    def factor(self) -> float:
        if self.pairs < self._MIN_PAIRS or self.power_kw2 <= 1e-9:
            return self._PRIOR
        return min(0.95, max(0.0, self.lagged_kw2 / self.power_kw2))


class BaseLoadForecast:
    """The site's base load (kW, slot averages), learned from its own history.

    `zone` is the site's time zone: day types and times of day are local. `weight` is the
    exponential weight of a new day in its (day type, slot of day) average, after the first
    `1 / weight` days are averaged evenly. A slot of a day type not yet seen borrows the
    same time of day of the other day type, at half the trust.
    """

    def __init__(self, *, zone: tzinfo, slot_s: int = 900, weight: float = 0.2) -> None:
        _check_slot_s(slot_s)
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"weight must be in (0, 1], not {weight}")
        self.zone = zone
        self.slot_s = slot_s
        self.weight = weight
        self.error = ForecastError(slot_s=slot_s)
        self._profile: dict[tuple[bool, int], _Profile] = {}
        """(Sunday, slot of day) -> profile: at most two days of slots."""
        self._open: _SlotMean | None = None
        self._last: _Closed | None = None
        self._carry = _Carry()

    def observe(self, at: datetime, base_kw: float) -> None:
        """One cycle's base load: the site's power less the loads the agent moves, with
        measured generation added back (kW). A sample older than the slot being observed
        (a clock stepped back) is dropped, as is a non-finite one."""
        if not math.isfinite(base_kw):
            return
        slot = _slot_of(at, self.slot_s)
        current = self._open
        if current is None or slot > current.slot:
            if current is not None:
                self._close(current)
            current = self._open = _SlotMean(slot)
        elif slot < current.slot:
            return
        current.add(base_kw)

    def forecast(self, start: datetime, slots: int) -> tuple[float, ...]:
        """kW per slot (>= 0) for `slots` slots from the one holding `start`. With nothing
        observed yet and no history, 0."""
        first = _slot_of(start, self.slot_s)
        current = self._open
        recent = self._last
        if current is not None and current.slot < first:
            recent = self._summarise(current)  # completed, though not yet closed by a sample
        level: float | None = None
        if recent is not None:
            level = recent.mean_kw
        elif current is not None:
            level = current.mean_kw
        carry = self._carry.factor()
        values = []
        for slot in range(first, first + max(0, slots)):
            expected = self._expected(self._key(slot))
            if expected is None:
                value = 0.0 if level is None else level
            elif level is None:
                value = expected[0]
            else:
                profile_kw, trust, own = expected
                ahead = 1 if recent is None else max(1, slot - recent.slot)
                fade = carry**ahead
                shift_kw = 0.0
                if recent is not None and recent.anomaly_kw is not None:
                    shift_kw = recent.anomaly_kw * fade
                if own:  # the young profile's hedge, persistence, counts only near
                    trust = 1.0 - (1.0 - trust) * fade
                value = trust * (profile_kw + shift_kw) + (1.0 - trust) * level
            values.append(max(0.0, value))
        return tuple(values)

    def _key(self, slot: int) -> tuple[bool, int]:
        local = datetime.fromtimestamp(slot * self.slot_s, self.zone)
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        return (local.weekday() == 6, seconds // self.slot_s)

    def _expected(self, key: tuple[bool, int]) -> tuple[float, float, bool] | None:
        """The profile's kW for a slot, how far to trust it (0..1), and whether it is the
        slot's own day type (else the other's, borrowed)."""
        own = self._profile.get(key)
        if own is not None:
            return own.kw, own.days / (own.days + 1), True
        other = self._profile.get((not key[0], key[1]))
        if other is not None:
            return other.kw, 0.5 * other.days / (other.days + 1), False
        return None

    def _summarise(self, done: _SlotMean) -> _Closed:
        expected = self._expected(self._key(done.slot))
        if expected is None:
            return _Closed(done.slot, done.mean_kw, None, own=False)
        return _Closed(done.slot, done.mean_kw, done.mean_kw - expected[0], own=expected[2])

    def _close(self, done: _SlotMean) -> None:
        closed = self._summarise(done)
        last = self._last
        if (
            closed.anomaly_kw is not None
            and closed.own
            and last is not None
            and last.anomaly_kw is not None
            and last.own
            and last.slot == closed.slot - 1
        ):
            self._carry.add(last.anomaly_kw, closed.anomaly_kw)
        key = self._key(done.slot)
        entry = self._profile.get(key)
        if entry is None:
            self._profile[key] = _Profile(closed.mean_kw, 1)
        else:
            entry.days = min(entry.days + 1, 10_000)
            entry.kw += max(self.weight, 1.0 / entry.days) * (closed.mean_kw - entry.kw)
        self._last = closed
        self.error.realise(datetime.fromtimestamp(done.slot * self.slot_s, UTC), closed.mean_kw)


# PV --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Bucket:
    """Five minutes of daylight samples: their mean PV (kW) and clear-sky (W/m²)."""

    index: int
    pv_kw: float = 0.0
    clear_w_m2: float = 0.0
    count: int = 0

    def add(self, pv_kw: float, clear_w_m2: float) -> None:
        self.pv_kw += pv_kw
        self.clear_w_m2 += clear_w_m2
        self.count += 1


class PvForecast:
    """On-site PV generation (kW, slot averages, >= 0): clear sky times the recent clouds.

    The ratio (kW per W/m² of clear-sky irradiance) is measured over the last `recent_s` of
    daylight, trusted in proportion to the clear-sky energy behind it (the hour after dawn
    says little), bounded by 1.25 times the best hour seen, and fades for later slots with
    time constant `fade_s` towards the typical day's ratio (exponentially weighted over
    days, `weight` a day). Without `latitude_deg` and `longitude_deg` the site's sun is
    unknown and every forecast is 0; before any PV is measured, too.
    """

    _BUCKET_S = 300
    _TRUST_WH_M2 = 50.0
    """Clear-sky energy (Wh/m²) at which the recent ratio is trusted halfway."""
    _FULL_TRUST = 0.8
    _MIN_DAY_BUCKETS = 12
    """A day counts towards the typical ratio once it has an hour of daylight samples."""

    def __init__(
        self,
        *,
        latitude_deg: float | None,
        longitude_deg: float | None,
        zone: tzinfo,
        slot_s: int = 900,
        recent_s: float = 3600.0,
        fade_s: float = 7200.0,
        weight: float = 0.2,
    ) -> None:
        _check_slot_s(slot_s)
        if (latitude_deg is None) != (longitude_deg is None):
            raise ValueError("give both latitude_deg and longitude_deg, or neither")
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"weight must be in (0, 1], not {weight}")
        self.latitude_deg = latitude_deg
        self.longitude_deg = longitude_deg
        self.zone = zone
        self.slot_s = slot_s
        self.fade_s = fade_s
        self.weight = weight
        self.error = ForecastError(slot_s=slot_s)
        self._buckets: deque[_Bucket] = deque(maxlen=max(1, round(recent_s / self._BUCKET_S)))
        self._last_daylight_ts: float | None = None
        self._ceiling: float | None = None
        self._typical: float | None = None
        self._days = 0
        self._day_end_ts: float | None = None
        self._day = _Bucket(0)
        """Today's daylight so far, as sums of bucket means (index counts buckets)."""
        self._folded_index: int | None = None
        """The newest bucket already in `_day`."""
        self._open: _SlotMean | None = None
        self._open_daylight = False

    @property
    def located(self) -> bool:
        """The site's coordinates are known: without them there is no PV forecast."""
        return self.latitude_deg is not None and self.longitude_deg is not None

    def clear_sky_w_m2(self, at: datetime) -> float:
        """Clear-sky global horizontal irradiance at the site (W/m²); 0 if not located."""
        if self.latitude_deg is None or self.longitude_deg is None:
            return 0.0
        return clear_sky_w_m2(at, latitude_deg=self.latitude_deg, longitude_deg=self.longitude_deg)

    def observe(self, at: datetime, pv_kw: float) -> None:
        """One cycle's measured generation (kW, the sum over the generation devices)."""
        if not self.located or not math.isfinite(pv_kw):
            return
        pv_kw = max(0.0, pv_kw)
        ts = _timestamp(at)
        clear = self.clear_sky_w_m2(at)
        self._observe_slot(at, pv_kw, clear > 0.0)
        if self._day_end_ts is None or ts >= self._day_end_ts:
            self._end_day()
            self._day_end_ts = self._next_midnight_ts(at)
        if clear <= 0.0:
            return
        index = math.floor(ts / self._BUCKET_S)
        if not self._buckets or self._buckets[-1].index < index:
            self._fold_bucket_into_day()
            self._buckets.append(_Bucket(index))
        elif self._buckets[-1].index > index:
            return  # a clock stepped back
        self._buckets[-1].add(pv_kw, clear)
        self._last_daylight_ts = ts
        ratio, trust = self._recent()
        if ratio is not None and trust >= self._FULL_TRUST:
            self._ceiling = ratio if self._ceiling is None else max(self._ceiling, ratio)

    def forecast(self, start: datetime, slots: int) -> tuple[float, ...]:
        """kW generated per slot (>= 0) for `slots` slots from the one holding `start`."""
        first = _slot_of(start, self.slot_s)
        count = max(0, slots)
        if not self.located:
            return (0.0,) * count
        recent, trust = self._recent()
        if recent is not None and self._ceiling is not None:
            recent = min(recent, 1.25 * self._ceiling)
        typical = self._typical if self._typical is not None else self._today()
        values = []
        for slot in range(first, first + count):
            begin_ts = slot * self.slot_s
            clear = (
                sum(
                    self.clear_sky_w_m2(
                        datetime.fromtimestamp(begin_ts + self.slot_s * part / 6, UTC)
                    )
                    for part in (1, 3, 5)
                )
                / 3
            )
            if clear <= 0.0:
                values.append(0.0)
                continue
            if recent is None:
                ratio = 0.0 if typical is None else typical
            elif typical is None:
                ratio = recent
            else:
                assert self._last_daylight_ts is not None
                age_s = max(0.0, begin_ts + self.slot_s / 2 - self._last_daylight_ts)
                fresh = trust * math.exp(-age_s / self.fade_s)
                ratio = fresh * recent + (1.0 - fresh) * typical
            values.append(max(0.0, ratio * clear))
        return tuple(values)

    def _recent(self) -> tuple[float | None, float]:
        """The recent ratio (kW per W/m²), and how far to trust it (0..1)."""
        pv = clear = 0.0
        for bucket in self._buckets:
            pv += bucket.pv_kw / bucket.count
            clear += bucket.clear_w_m2 / bucket.count
        if clear <= 0.0:
            return None, 0.0
        energy_wh_m2 = clear * self._BUCKET_S / 3600.0
        return pv / clear, energy_wh_m2 / (energy_wh_m2 + self._TRUST_WH_M2)

    def _today(self) -> float | None:
        if self._day.clear_w_m2 <= 0.0:
            return None
        return self._day.pv_kw / self._day.clear_w_m2

    def _fold_bucket_into_day(self) -> None:
        """The newest bucket is complete (or its day is over): it joins today's sums, once."""
        if not self._buckets:
            return
        last = self._buckets[-1]
        if self._folded_index is not None and last.index <= self._folded_index:
            return
        self._folded_index = last.index
        self._day.pv_kw += last.pv_kw / last.count
        self._day.clear_w_m2 += last.clear_w_m2 / last.count
        self._day.index += 1

    def _end_day(self) -> None:
        """A local midnight passed: the day's ratio joins the typical one."""
        self._fold_bucket_into_day()
        ratio = self._today()
        if ratio is not None and self._day.index >= self._MIN_DAY_BUCKETS:
            self._days += 1
            step = max(self.weight, 1.0 / self._days)
            self._typical = (
                ratio if self._typical is None else (self._typical + step * (ratio - self._typical))
            )
        self._day = _Bucket(0)

    def _next_midnight_ts(self, at: datetime) -> float:
        local = at.astimezone(self.zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight.timestamp() + _DAY_S

    def _observe_slot(self, at: datetime, pv_kw: float, daylight: bool) -> None:
        """The slot's realised average, scored only for slots with daylight (nights would
        flatter the error with zeros)."""
        slot = _slot_of(at, self.slot_s)
        current = self._open
        if current is None or slot > current.slot:
            if current is not None and self._open_daylight:
                start = datetime.fromtimestamp(current.slot * self.slot_s, UTC)
                self.error.realise(start, current.mean_kw)
            current = self._open = _SlotMean(slot)
            self._open_daylight = False
        elif slot < current.slot:
            return
        current.add(pv_kw)
        self._open_daylight = self._open_daylight or daylight
