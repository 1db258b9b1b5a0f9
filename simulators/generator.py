"""Random factories: one-factory days that nobody here wrote, drawn from a seed.

The demo park is three factories that the control was developed on; a control tuned to
them proves nothing about the next plant. `draw(seed)` makes a factory from one seeded
`random.Random`: a weekday, a base load (50-600 kW) and its night share, a mix of machines
from `simulators.machines.PHYSICS` (0-3 batch furnaces, 0-4 compressors, 0-2 chillers, 0-2
pumps, 0-6 car or forklift chargers, 0-2 moulders, 0-1 rooftop PV) with their sizes and
load policies, and the day's events: a demand-response request or not (a cut of 10-40 %
of the limit for 30-120 min, in peak hours, at night or by day, asked 0-60 min ahead), a
meter failure, a PLC failure and a broker outage, each sometimes (5-30 min).

The demand limit is 70-110 % of the factory's uncontrolled peak 15-min demand, which only
the uncontrolled day can tell: `calibrate` runs it once in-process (`run_direct`, mode
"none") and sets the limit, and the demand-response target from it. Nothing is cached:
the same seed and poll interval give the same scenario, exactly.

    python -m simulators.generator 17 --out factory-17.yaml
    edge-agent simulate factory-17.yaml

Machine sizes reach the scenario as each machine's `params` (fields of its physics class),
load-policy overrides as its `load`, the tariff calendar and voltage as `tariff`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import TypeAdapter

from .events import Event
from .park import Scenario
from .park_run import WINDOW_S, Run, run_direct

__all__ = [
    "DemandResponseDraw",
    "Draw",
    "calibrate",
    "draw",
    "main",
    "random_scenario",
    "scenario_yaml",
    "uncontrolled_peak_kw",
]

ZONE = "Asia/Ho_Chi_Minh"
POLL_INTERVAL_S = 10.0
"""How often the agent polls and the plant is stepped, s: the demo park's interval. The
compressors' receivers move a few tenths of a bar per step at 10 s; far coarser steps
make the physics itself breach its bands."""

LIMIT_SHARE = (0.70, 1.10)
"""The demand limit, as a share of the uncontrolled day's peak 15-min demand."""
CUT_SHARE = (0.10, 0.40)
"""A demand-response request lowers the limit by this share of it."""

# Machines of each model a factory may have: (model, most), in the order they are drawn.
_MIX: tuple[tuple[str, int], ...] = (
    ("batch-furnace", 3),
    ("air-compressor", 4),
    ("process-chiller", 2),
    ("tank-pump", 2),
    ("charger", 6),
    ("injection-moulder", 2),
    ("rooftop-pv", 1),
)
_NAMES = {
    "batch-furnace": "furnace",
    "air-compressor": "compressor",
    "process-chiller": "chiller",
    "tank-pump": "pump",
    "ev-charger": "ev-charger",
    "forklift-charger": "forklift-charger",
    "injection-moulder": "moulder",
    "rooftop-pv": "pv",
}
# The default policy's priority of each load model (simulators/load_policies.py), varied.
_PRIORITY = {
    "air-compressor": 30,
    "process-chiller": 40,
    "tank-pump": 20,
    "batch-furnace": 60,
    "ev-charger": 10,
    "forklift-charger": 10,
}


@dataclass(frozen=True, slots=True)
class DemandResponseDraw:
    """A demand-response request as drawn, before the limit it cuts is known."""

    at: time
    """When the request goes out, local time."""
    start: time
    """When the lower limit begins, local time (0-60 min after `at`)."""
    duration_min: int
    cut_share: float
    """The request's limit is the factory's limit less this share of it."""
    when: str
    """`peak`, `night` or `day`: which part of the tariff day it falls in."""


@dataclass(frozen=True, slots=True)
class Draw:
    """A random factory as its seed makes it, before calibration: `scenario` has no limit
    and no demand-response request yet (neither changes the uncontrolled day)."""

    seed: int
    scenario: Scenario
    limit_share: float
    demand_response: DemandResponseDraw | None

    def calibrated(self, uncontrolled_peak_kw: float) -> Scenario:
        """The scenario with its limit, `limit_share` of the uncontrolled peak (kW, rounded
        to 1 kW), and the demand-response request that cuts it."""
        limit_kw = max(1.0, round(self.limit_share * uncontrolled_peak_kw))
        factory = self.scenario.factories[0].model_copy(update={"limit_kw": limit_kw})
        events = list(self.scenario.events)
        request = self.demand_response
        if request is not None:
            asked_kw = max(1.0, round(limit_kw * (1 - request.cut_share)))
            events.append(
                _EVENT.validate_python(
                    {
                        "kind": "demand_response",
                        "id": f"dr-{request.when}-{request.start:%H%M}",
                        "factory": factory.name,
                        "at": f"{request.at:%H:%M}",
                        "start": f"{request.start:%H:%M}",
                        "duration_min": request.duration_min,
                        "limit_kw": asked_kw,
                    }
                )
            )
        events.sort(key=lambda e: e.at)
        return self.scenario.model_copy(update={"factories": [factory], "events": events})


_EVENT: TypeAdapter[Event] = TypeAdapter(Event)
"""Events are validated as a scenario file's would be."""


def _minutes(rng: random.Random, first: str, last: str, step: int = 5) -> time:
    """A local time on a `step`-minute grid between `first` and `last` (both included)."""
    low, high = (time.fromisoformat(t) for t in (first, last))
    a, b = low.hour * 60 + low.minute, high.hour * 60 + high.minute
    minute = a + step * rng.randint(0, (b - a) // step)
    return time(minute // 60, minute % 60)


def _weekday(rng: random.Random) -> date:
    """A Monday to Friday of 2026 (Saturday is a weekday on EVN's tariff, but not a full
    shift in most factories; Sunday has no peak hours)."""
    monday = date(2026, 1, 5) + timedelta(weeks=rng.randrange(52))
    return monday + timedelta(days=rng.randrange(5))


def _machine(rng: random.Random, model: str, base_kw: float) -> tuple[dict[str, Any], str]:
    """One machine's sizes (fields of its physics class) and its physics model's name."""
    if model == "charger":
        model = rng.choice(["ev-charger", "forklift-charger"])
    params: dict[str, Any]
    match model:
        case "batch-furnace":
            low = rng.randint(1, 4)
            params = {
                "rated_kw": round(rng.uniform(80, 250), 1),
                "batches_per_day": [low, min(5, low + rng.randint(0, 2))],
            }
        case "air-compressor":
            rated = rng.choice([22.0, 30.0, 37.0, 45.0, 55.0, 75.0, 90.0])
            fad = round(rated * rng.uniform(0.16, 0.18), 2)
            params = {
                "rated_kw": rated,
                "fad_m3_min": fad,
                "receiver_m3": round(fad * rng.uniform(0.6, 1.1), 1),
                "demand_share": round(rng.uniform(0.4, 0.72), 2),
            }
        case "process-chiller":
            thermal = rng.uniform(80, 400)
            cop = rng.uniform(3.2, 5.0)
            params = {
                "load_kw_thermal": round(thermal, 1),
                "cop": round(cop, 2),
                "rated_kw": round(thermal / cop * rng.uniform(1.25, 1.6), 1),
                "tank_m3": round(rng.uniform(15, 60), 1),
            }
        case "tank-pump":
            rated = rng.uniform(10, 45)
            flow = rated * 2.7
            params = {
                "rated_kw": round(rated, 1),
                "flow_m3_h": round(flow, 1),
                "draw_m3_h": round(flow * rng.uniform(0.3, 0.6), 1),
                "tank_m3": round(rng.uniform(20, 100), 1),
            }
        case "ev-charger":
            params = {"rated_kw": rng.choice([7.4, 11.0, 22.0])}
        case "forklift-charger":
            params = {"rated_kw": rng.choice([6.0, 8.0, 10.0])}
        case "injection-moulder":
            params = {
                "motor_kw_peak": round(rng.uniform(25, 80), 1),
                "heater_kw_on": round(rng.uniform(10, 30), 1),
            }
        case _:
            assert model == "rooftop-pv", model
            params = {"peak_kw": round(base_kw * rng.uniform(0.2, 0.8), 1)}
    return params, model


def _policy(rng: random.Random, model: str) -> dict[str, Any] | None:
    """Overrides of the load policy a plant engineer might have chosen (priority, minimum
    on and off times, sheds per day), or None for a machine that is not a load. The load's
    rated power is the machine's `rated_kw` (its params)."""
    if model not in _PRIORITY:
        return None
    load: dict[str, Any] = {"priority": max(0, _PRIORITY[model] + rng.randint(-10, 10))}
    if model == "batch-furnace":
        return load
    # Minimum off times stay under each policy's maximum off time (a compressor's 180 s).
    on = [180, 300, 600] if model == "process-chiller" else [60, 120, 300]
    off = {"process-chiller": [180, 300, 600], "air-compressor": [60, 90, 120]}
    load["min_on_s"] = rng.choice(on)
    load["min_off_s"] = rng.choice(off.get(model, [60, 120, 300]))
    load["max_sheds_per_day"] = rng.randint(4, 24)
    return load


def _trade(models: list[str]) -> str:
    """A readable name for the factory, from what it mostly has."""
    if "batch-furnace" in models:
        return "metal-works"
    if "injection-moulder" in models:
        return "plastics"
    if sum(m.endswith("charger") for m in models) >= 3:
        return "logistics"
    if "process-chiller" in models:
        return "food"
    return "assembly"


def _demand_response(rng: random.Random, calendar: str) -> DemandResponseDraw | None:
    """A request or not; its window in peak hours, at night or by day, wholly in the day."""
    if rng.random() >= 0.6:
        return None
    when = rng.choice(["peak", "peak", "night", "day"])
    duration = 5 * rng.randint(6, 24)
    if when == "peak":
        start = (
            _minutes(rng, "17:30", "21:00")
            if calendar == "evn-2026"
            else rng.choice([_minutes(rng, "09:30", "10:30"), _minutes(rng, "17:00", "19:00")])
        )
    elif when == "night":
        start = rng.choice([_minutes(rng, "01:00", "03:30"), time(22, 0)])
    else:
        start = _minutes(rng, "12:00", "15:30")
    lead = 5 * rng.randint(0, 12)
    at = (datetime.combine(date(2026, 1, 5), start) - timedelta(minutes=lead)).time()
    return DemandResponseDraw(
        at=at,
        start=start,
        duration_min=duration,
        cut_share=round(rng.uniform(*CUT_SHARE), 3),
        when=when,
    )


def _failures(rng: random.Random, factory: str, machines: list[str]) -> list[dict[str, Any]]:
    """A meter failure, a PLC failure and a broker outage, each sometimes (5-30 min)."""
    events: list[dict[str, Any]] = []
    for kind in ("meter", "plc", "broker"):
        happens = rng.random() < (0.3 if kind == "broker" else 0.35)
        at, minutes = _minutes(rng, "00:30", "23:00"), 5 * rng.randint(1, 6)
        device = rng.choice(machines) if machines else None
        if not happens or (kind == "plc" and device is None):
            continue
        event: dict[str, Any] = {"at": f"{at:%H:%M}", "duration_min": minutes}
        if kind == "broker":
            events.append({**event, "kind": "broker_outage"})
        else:
            # In-process a failed PLC silences the machine named here; over the protocols
            # its OPC UA server (every machine of the factory) goes away.
            name = "incomer" if kind == "meter" else device
            events.append({**event, "kind": "device_failure", "factory": factory, "device": name})
    return events


def draw(seed: int, *, poll_interval_s: float = POLL_INTERVAL_S) -> Draw:
    """The factory of `seed`: the same seed gives the same draw, exactly."""
    rng = random.Random(f"random-factory/{seed}")
    day = _weekday(rng)
    base_kw = round(rng.uniform(50, 600), 1)
    night_share = round(rng.uniform(0.2, 0.9), 2)
    tariff = {
        "calendar": rng.choice(["evn-2014", "evn-2014", "evn-2026"]),
        "voltage": rng.choice(["22_to_110kv", "6_to_22kv", "110kv_and_above"]),
    }
    counts = {model: rng.randint(0, most) for model, most in _MIX}
    specs: list[dict[str, Any]] = []
    numbers: dict[str, int] = {}
    for model, count in counts.items():
        for _ in range(count):
            params, physics = _machine(rng, model, base_kw)
            load = _policy(rng, physics)
            numbers[physics] = numbers.get(physics, 0) + 1
            spec: dict[str, Any] = {
                "name": f"{_NAMES[physics]}-{numbers[physics]}",
                "model": physics,
            }
            spec["params"] = params
            if load is not None:
                spec["load"] = load
            specs.append(spec)
    models = [s["model"] for s in specs]
    name = f"{_trade(models)}-{seed}"
    request = _demand_response(rng, tariff["calendar"])
    limit_share = round(rng.uniform(*LIMIT_SHARE), 3)
    failing = [s["name"] for s in specs if s["model"] in _PRIORITY]
    events = _failures(rng, name, failing)
    document: dict[str, Any] = {
        "name": f"random-{seed}",
        "park": "random-park",
        "timezone": ZONE,
        "start": datetime.combine(day, time(0), ZoneInfo(ZONE)).isoformat(),
        "duration_h": 24,
        "seed": seed,
        "poll_interval_s": poll_interval_s,
        "summary_interval_s": 300,
        "factories": [
            {"name": name, "base_load_kw": base_kw, "night_share": night_share, "machines": specs}
        ],
        "events": sorted(events, key=lambda e: str(e["at"])),
    }
    document["tariff"] = tariff
    return Draw(seed, Scenario.model_validate(document), limit_share, request)


def uncontrolled_peak_kw(run: Run, factory: str) -> float:
    """The highest 15-min average demand of a recorded day, kW."""
    imports = run.records[factory].import_kwh
    return max(imports, default=0.0) * 3600 / WINDOW_S


async def calibrate(drawn: Draw) -> tuple[Scenario, Run]:
    """The scenario with its limit set from its own uncontrolled day, run once in-process;
    that day too, its record scored against the limit (the uncontrolled day does not
    depend on the limit or on the requests, so it serves as the no-control baseline)."""
    run = await run_direct(drawn.scenario, "none")
    factory = drawn.scenario.factories[0].name
    scenario = drawn.calibrated(uncontrolled_peak_kw(run, factory))
    run.records[factory].limit_kw = scenario.factories[0].limit_kw
    return scenario, run


def random_scenario(seed: int, *, poll_interval_s: float = POLL_INTERVAL_S) -> Scenario:
    """The calibrated factory of `seed` (runs its uncontrolled day once, in-process)."""
    scenario, _ = asyncio.run(calibrate(draw(seed, poll_interval_s=poll_interval_s)))
    return scenario


def scenario_yaml(scenario: Scenario, drawn: Draw) -> str:
    """The scenario as a file `edge-agent simulate` reads, with a header saying where the
    factory came from and how its limit was set."""
    factory = scenario.factories[0]
    peak_kw = (factory.limit_kw or 0.0) / drawn.limit_share
    request = drawn.demand_response
    header = [
        f"# A random factory: seed {drawn.seed}, drawn by simulators.generator.",
        f"# Its limit is {drawn.limit_share:.0%} of its uncontrolled peak 15-min demand "
        f"(about {peak_kw:,.0f} kW, polled every {scenario.poll_interval_s:g} s).",
    ]
    if request is not None:
        header.append(
            f"# The demand-response request ({request.when}) cuts the limit by "
            f"{request.cut_share:.0%} for {request.duration_min} min."
        )
    poll = scenario.poll_interval_s
    again = "" if poll == POLL_INTERVAL_S else f" --poll-interval-s {poll:g}"
    header.append("# Run it: edge-agent simulate FILE")
    header.append(f"# Draw it again: python -m simulators.generator {drawn.seed}{again} --out FILE")
    body: str = yaml.safe_dump(
        scenario.model_dump(mode="json", exclude_none=True), sort_keys=False, width=100
    )
    return "\n".join(header) + "\n" + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.generator",
        description="Draw a random factory from a seed, calibrate its limit on its "
        "uncontrolled day, and write it as a scenario file.",
        epilog="example: python -m simulators.generator 17 --out factory-17.yaml && "
        "edge-agent simulate factory-17.yaml",
    )
    parser.add_argument("seed", type=int)
    parser.add_argument("--out", type=Path, help="the scenario file (default: standard output)")
    parser.add_argument(
        "--poll-interval-s",
        type=float,
        default=POLL_INTERVAL_S,
        help=f"the agent's poll and the plant's step, s (default {POLL_INTERVAL_S:g})",
    )
    args = parser.parse_args(argv)
    # The calibration day's own scripted faults (a device down) are expected: say only
    # what goes wrong with the run itself.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    drawn = draw(args.seed, poll_interval_s=args.poll_interval_s)
    scenario, _ = asyncio.run(calibrate(drawn))
    text = scenario_yaml(scenario, drawn)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
        print(
            f"{args.out}: {scenario.factories[0].name}, limit {scenario.factories[0].limit_kw:g} kW"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
