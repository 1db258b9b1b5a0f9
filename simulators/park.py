"""A park on the bench: scenarios, and simulated days with the real protocol stacks.

A scenario (configs/scenarios/*.yaml) names the park's factories: each has a process base
load with shifts, an incoming-supply meter (Modbus, the catalogue map) that measures the
base load plus its machines, and machines over OPC UA. `simulate()` serves them all on
loopback, runs one agent per factory and an MQTT broker, and moves one `SimClock` through
the day as fast as the stacks answer. The same scenario and seed give the same metrics.

A scenario's `events:` (simulators/events.py) happen at their moments: a demand-response
request sent to an agent as a real command, a device that stops answering, a broker outage.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BeforeValidator, Field, PositiveFloat

from edge_agent.config.base import Name, StrictModel
from edge_agent.config.loader import load_document, load_modbus_model
from edge_agent.config.schema import SiteConfig
from edge_agent.energy.tariff import EmissionsConfig, TariffConfig

from .events import Event, check_events
from .factory import Plant
from .load_policies import Mode, load_for
from .park_run import WINDOW_S, Run, direct_day, run_protocols
from .scoring import hindsight, score

__all__ = ["Scenario", "load_scenario", "score_runs", "simulate", "site_config"]


class MachineSpec(StrictModel):
    name: Name
    model: str
    """An OPC UA node map of the catalogue with physics in `simulators.machines.PHYSICS`:
    air-compressor, batch-furnace, electric-furnace, ev-charger, forklift-charger,
    injection-moulder, process-chiller, rooftop-pv or tank-pump."""


class FactorySpec(StrictModel):
    name: Name
    base_load_kw: PositiveFloat
    """The process load besides the machines, at full shift."""
    night_share: float = Field(default=0.35, ge=0, le=1)
    """The base load between shifts (22:00-06:00 local), as a share of the day's."""
    machines: list[MachineSpec] = Field(default_factory=list)
    limit_kw: PositiveFloat | None = None
    """The demand limit the factory's agent holds (the billing window's average, kW); its
    compressors, chillers, pump and chargers are the loads it may shed, the batch furnace
    and the chargers the ones it may shift. Without it the agent only measures."""


def _with_offset(value: object) -> object:
    """A start without its UTC offset is ambiguous by hours: say so, and how to write it."""
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(
            "expected a date and time with its UTC offset, like 2026-03-02T00:00:00+07:00; "
            f"found {value.isoformat()}"
        )
    return value


class Scenario(StrictModel):
    """A simulated stretch of a park's life, read from configs/scenarios/*.yaml."""

    name: Name
    park: Name
    timezone: str = "Asia/Ho_Chi_Minh"
    start: Annotated[AwareDatetime, BeforeValidator(_with_offset)]
    duration_h: PositiveFloat = 24
    seed: int = 1
    poll_interval_s: PositiveFloat = 5
    summary_interval_s: int = 300
    factories: list[FactorySpec] = Field(min_length=1)
    events: list[Event] = Field(default_factory=list)
    """What happens during the run, each at a local time of day "HH:MM" (or "HH:MM:SS") in
    `timezone`, the first such moment at or after `start`: `demand_response`,
    `device_failure`, `broker_outage` (simulators/events.py has their fields)."""


def site_config(
    scenario: Scenario,
    factory: FactorySpec,
    plant: Plant,
    *,
    broker_port: int,
    work: Path,
    mode: Mode = "agent",
) -> SiteConfig:
    """The site file a plant engineer would write for this factory, as a model: the incomer
    on Modbus, each machine on the factory's PLC, and (with a limit) the loads it controls."""
    interval = scenario.poll_interval_s
    meter = load_modbus_model("eastron-sdm630").model_dump(
        exclude={"driver", "name", "host", "port"}
    )
    devices: list[dict[str, Any]] = [
        {
            **meter,
            "driver": "modbus-tcp",
            "name": "incomer",
            "host": "127.0.0.1",
            "port": plant.meter_port or 1,
            "poll_interval_s": interval,
        }
    ]
    for machine in factory.machines:
        served = plant.maps[machine.name]
        devices.append(
            {
                **served.model_dump(exclude={"name", "endpoint", "points"}),
                "name": machine.name,
                "endpoint": plant.url or "opc.tcp://127.0.0.1:1",
                "mode": "read",
                "poll_interval_s": interval,
                "points": {n: p.model_dump() for n, p in served.points.items() if p.method is None},
            }
        )
    for device in devices:  # every point at the scenario's one interval
        for point in device["points"].values():
            point["poll_interval_s"] = None
    loads = [
        load
        for machine in factory.machines
        if (load := load_for(machine.name, machine.model, mode)) is not None
    ]
    control = None
    if factory.limit_kw is not None and mode != "none":
        control = {
            "mode": "active",
            "meter": "incomer",
            "limit_kw": factory.limit_kw,
            "cycle_s": interval,
            "heartbeat_s": max(interval, 10),
            "write_interval_s": interval,
            "loads": loads,
        }
    return SiteConfig.model_validate(
        {
            "site": {"name": factory.name, "park": scenario.park, "timezone": scenario.timezone},
            "broker": {"host": "127.0.0.1", "port": broker_port},
            "summary": {"interval_s": scenario.summary_interval_s, "settle_s": interval},
            "outbox": {"path": str(work / f"{factory.name}.sqlite")},
            "devices": devices,
            "control": control,
        }
    )


async def simulate(
    scenario: Scenario,
    out: Path,
    *,
    progress: Callable[[float], None] | None = None,
    baselines: bool = True,
) -> dict[str, Any]:
    """Run the scenario over the protocol stacks; with `baselines`, run it again in-process
    without control and with a classic limiter, and solve the perfect-hindsight bound; write
    `metrics.json` and `report.html` into `out`; the metrics."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    modes: tuple[Mode, ...] = ("none", "limiter") if baselines else ()
    # The baselines run in a process of their own, on the other core, while the main run
    # (one event loop, one core) goes through the protocol stacks.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        loop = asyncio.get_running_loop()
        pending = {
            mode: loop.run_in_executor(pool, direct_day, scenario.model_dump_json(), mode)
            for mode in modes
        }
        main = await run_protocols(scenario, "agent", progress=progress)
        runs = {"agent": main} | {mode: await future for mode, future in pending.items()}
    metrics = _metrics(scenario, main.summaries)
    metrics["events"] = main.events
    metrics["delivery"] = main.delivery
    metrics["score"] = score_runs(scenario, runs)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    (out / "report.html").write_text(_report(scenario, metrics, runs))
    return metrics


def score_runs(scenario: Scenario, runs: dict[str, Run]) -> dict[str, Any]:
    """Each factory's day under each kind of control, scored on the plant's ground truth,
    beside the perfect-hindsight bound; the savings against no control."""
    tariff, emissions = TariffConfig(), EmissionsConfig()
    zone = scenario.timezone
    factories: dict[str, Any] = {}
    for factory in scenario.factories:
        name = factory.name
        control = runs["agent"].agents[name].config.control
        min_times = {
            load.name: (load.min_on_s, load.min_off_s)
            for load in (control.loads if control else [])
        }
        per: dict[str, Any] = {
            mode: score(
                run.records[name],
                window_s=WINDOW_S,
                tariff=tariff,
                zone=zone,
                emissions=emissions,
                min_times=min_times,
            )
            for mode, run in runs.items()
        }
        none = runs.get("none")
        if none is not None and none.records[name].window_starts:  # a whole window to score
            per["hindsight"] = hindsight(
                none.records[name],
                none.machines[name],
                window_s=WINDOW_S,
                tariff=tariff,
                zone=zone,
            )
            base = per["none"]["cost_vnd"]
            bound = base - per["hindsight"]["cost_vnd"]
            for mode in ("agent", "limiter"):
                saved = base - per[mode]["cost_vnd"]
                per[mode]["cost_saved_vnd"] = saved
                per[mode]["cost_saved_pct"] = round(100 * saved / base, 2) if base else 0.0
                per[mode]["share_of_bound"] = round(saved / bound, 3) if bound > 0 else None
                per[mode]["peak_reduction_kw"] = round(
                    per["none"]["peak_window_demand_kw"] - per[mode]["peak_window_demand_kw"], 1
                )
                per[mode]["kwh_out_of_peak_hours"] = round(
                    per["none"]["peak_hours_kwh"] - per[mode]["peak_hours_kwh"], 1
                )
            per["hindsight"]["cost_saved_vnd"] = bound
        per["limit_kw"] = factory.limit_kw
        factories[name] = per
    factories["park"] = _park_totals(factories)
    return factories


def _park_totals(factories: dict[str, Any]) -> dict[str, Any]:
    """The park's sums: cost, savings and hard violations over its factories."""
    modes = {m for per in factories.values() for m in per if isinstance(per[m], dict)}
    totals: dict[str, Any] = {"limit_kw": None}
    for mode in sorted(modes):
        rows = [per[mode] for per in factories.values() if isinstance(per.get(mode), dict)]
        totals[mode] = {
            key: sum(r.get(key) or 0 for r in rows)
            for key in (
                "cost_vnd",
                "peak_hours_kwh",
                "co2_kg",
                "over_limit_kw_min",
                "deadlines_missed",
                "charging_shortfall_kwh",
                "min_on_off_breaches",
                "switching",
            )
            if any(key in r for r in rows)
        }
        breaches = [sum(r["process_band"].values()) for r in rows if "process_band" in r]
        if breaches:
            totals[mode]["process_breaches"] = round(sum(breaches), 1)
    if "none" in totals and "hindsight" in totals:
        base = totals["none"]["cost_vnd"]
        bound = base - totals["hindsight"]["cost_vnd"]
        for mode in ("agent", "limiter"):
            if mode in totals:
                saved = base - totals[mode]["cost_vnd"]
                totals[mode]["cost_saved_vnd"] = saved
                totals[mode]["cost_saved_pct"] = round(100 * saved / base, 2) if base else 0.0
                totals[mode]["share_of_bound"] = round(saved / bound, 3) if bound > 0 else None
        totals["hindsight"]["cost_saved_vnd"] = bound
    return totals


def _metrics(scenario: Scenario, summaries: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    factories = {}
    for name, rows in summaries.items():
        meter = sorted(
            (r for r in rows if r["device"] == "incomer"), key=lambda r: r["interval_start"]
        )
        energy = [r["energy_import_kwh"] for r in meter if r["energy_import_kwh"] is not None]
        window_ends = [
            r["billing_window_demand_kw"]
            for r in meter
            if r["billing_window_demand_kw"] is not None
            and r["interval_end"][14:16] in ("00", "15", "30", "45")
        ]
        goods = [r["good_ratio"] for r in rows if r["good_ratio"] is not None]
        factories[name] = {
            "energy_kwh": round(sum(energy), 3),
            "peak_window_demand_kw": round(max(window_ends, default=0.0), 3),
            "cost_vnd": round(sum(r["cost_vnd"] or 0 for r in meter)),
            "co2_kg": round(sum(r["co2_kg"] or 0 for r in meter), 3),
            "summaries": len(rows),
            "data_quality": round(sum(goods) / len(goods), 4) if goods else None,
        }
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "hours": scenario.duration_h,
        "factories": factories,
        "park": {
            "energy_kwh": round(sum(f["energy_kwh"] for f in factories.values()), 3),
            "cost_vnd": sum(f["cost_vnd"] for f in factories.values()),
        },
    }


def _report(scenario: Scenario, metrics: dict[str, Any], runs: dict[str, Run]) -> str:
    """A page a plant manager can read: the day per factory, the score against the
    baselines and the bound, demand against the limit, and the actions with their reasons."""
    zone = ZoneInfo(scenario.timezone)
    main = runs["agent"]
    sections = [_summary_table(metrics), _score_table(metrics)]
    for factory in scenario.factories:
        name = factory.name
        sections.append(_demand_plot(name, factory.limit_kw, runs, zone))
        sections.append(_actions_table(name, main, zone))
    walls = ", ".join(f"{mode} {run.wall_s:.0f} s ({run.transport})" for mode, run in runs.items())
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{scenario.name}: simulated {scenario.duration_h:g} h</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:3px 9px;text-align:right}}
th:first-child,td:first-child{{text-align:left}}table{{border-collapse:collapse}}
tr:nth-child(even){{background:#f4f6f8}}.why{{text-align:left;font-size:90%}}</style></head>
<body><h1>{scenario.park}: {scenario.name}, {scenario.duration_h:g} simulated hours from
{scenario.start.isoformat()}, seed {scenario.seed}</h1>
<p>The agent ran over Modbus TCP, OPC UA and MQTT on loopback; the baselines ran the same
plant models and seed in-process. Wall time: {walls}.</p>
{"".join(sections)}</body></html>"""


def _summary_table(metrics: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{n}</td><td>{f['energy_kwh']:,.1f}</td><td>{f['peak_window_demand_kw']:,.1f}"
        f"</td><td>{f['cost_vnd']:,}</td><td>{f['co2_kg']:,.1f}</td>"
        f"<td>{(f['data_quality'] or 0):.1%}</td></tr>"
        for n, f in metrics["factories"].items()
    )
    return (
        "<h2>The day, from the agents' summaries at the park's broker</h2>"
        "<table><tr><th>factory</th><th>energy kWh</th><th>peak 15-min demand kW</th>"
        f"<th>cost VND</th><th>CO2 kg</th><th>data quality</th></tr>{rows}</table>"
    )


_SCORE_COLUMNS = (
    ("peak_window_demand_kw", "peak 15-min kW", ",.1f"),
    ("cost_vnd", "cost VND", ",.0f"),
    ("cost_saved_pct", "saved %", ".2f"),
    ("share_of_bound", "of the bound", ".0%"),
    ("peak_hours_kwh", "kWh in peak hours", ",.1f"),
    ("co2_kg", "CO2 kg", ",.1f"),
    ("over_limit_kw_min", "over limit kW·min", ",.1f"),
    ("process_breaches", "process breaches", ",.1f"),
    ("deadlines_missed", "deadlines missed", "d"),
    ("charging_shortfall_kwh", "charging short kWh", ",.1f"),
    ("min_on_off_breaches", "min on/off breaches", "d"),
    ("switching", "switchings", "d"),
)


def _score_table(metrics: dict[str, Any]) -> str:
    head = "".join(f"<th>{title}</th>" for _, title, _ in _SCORE_COLUMNS)
    rows = []
    labels = {
        "none": "no control",
        "limiter": "classic priority limiter",
        "agent": "the agent (limiter + planner)",
        "hindsight": "perfect-hindsight bound",
    }
    for name, per in metrics["score"].items():
        limit = per.get("limit_kw")
        rows.append(
            f"<tr><th colspan='{len(_SCORE_COLUMNS) + 1}' style='text-align:left'>{name}"
            f"{f', limit {limit:,.0f} kW' if limit else ''}</th></tr>"
        )
        for mode, label in labels.items():
            figures = per.get(mode)
            if not figures:
                continue
            cells = []
            for key, _, fmt in _SCORE_COLUMNS:
                value = figures.get(key)
                if key == "process_breaches" and "process_band" in figures:
                    value = sum(figures["process_band"].values())
                cells.append("-" if value is None else format(value, fmt))
            rows.append(f"<tr><td>{label}</td>{''.join(f'<td>{c}</td>' for c in cells)}</tr>")
    return (
        "<h2>Score on the plant's ground truth (15-min windows, EVN time-of-use tariff)</h2>"
        f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"
    )


def _demand_plot(name: str, limit: float | None, runs: dict[str, Run], zone: ZoneInfo) -> str:
    record = runs["agent"].records[name]
    if not record.import_kwh:
        return ""
    width, height = 720, 170
    series = {mode: [kwh * 4 for kwh in run.records[name].import_kwh] for mode, run in runs.items()}
    top = max(max(values) for values in series.values()) * 1.1 or 1.0
    step = width / max(1, len(record.import_kwh) - 1)

    def y(kw: float) -> float:
        return height - kw / top * height

    colours = {"agent": "#1f5fa8", "none": "#999999", "limiter": "#e08a00"}
    lines = "".join(
        f"<polyline fill='none' stroke='{colours.get(mode, '#000')}' stroke-width="
        f"'{2 if mode == 'agent' else 1}' points='"
        + " ".join(f"{i * step:.1f},{y(kw):.1f}" for i, kw in enumerate(values))
        + "'/>"
        for mode, values in series.items()
    )
    peak = "".join(
        f"<rect x='{i * step:.1f}' y='0' width='{step:.1f}' height='{height}' fill='#fde2e2'/>"
        for i, start in enumerate(record.window_starts)
        if _band(start, zone) == "peak"
    )
    limit_line = (
        ""
        if limit is None
        else f"<line x1='0' x2='{width}' y1='{y(limit):.1f}' y2='{y(limit):.1f}' "
        f"stroke='#c00' stroke-dasharray='6 3'/>"
    )
    every = max(1, len(record.window_starts) // 8)
    ticks = "".join(
        f"<text x='{i * step:.1f}' y='{height + 14}' font-size='10' text-anchor='middle'>"
        f"{start.astimezone(zone):%H:%M}</text>"
        for i, start in enumerate(record.window_starts)
        if i % every == 0
    )
    legend = ", ".join(f"<span style='color:{colours[m]}'>{m}</span>" for m in series)
    return (
        f"<h3>{name}: 15-min demand (kW), local time; {legend}; the limit dashed red; "
        f"peak-tariff hours shaded</h3><svg width='{width + 40}' height='{height + 20}'>"
        f"<g transform='translate(30,0)'><rect width='{width}' height='{height}' fill='none' "
        f"stroke='#ccc'/>{peak}{limit_line}{lines}{ticks}</g>"
        f"<text x='0' y='10' font-size='10'>{top:.0f}</text>"
        f"<text x='0' y='{height:.0f}' font-size='10'>0</text></svg>"
    )


def _band(moment: datetime, zone: ZoneInfo) -> str:
    from edge_agent.energy.tariff import band_at

    return band_at(TariffConfig(), moment, str(zone))


def _actions_table(name: str, run: Run, zone: ZoneInfo) -> str:
    agent = run.agents[name]
    if agent.controller is None:
        return ""
    actions = [a for a in agent.controller.history if a.refused is None]
    kinds: dict[str, int] = {}
    for action in actions:
        kinds[action.kind] = kinds.get(action.kind, 0) + 1
    shown = [a for a in actions if a.kind in ("defer", "start")][:12] + [
        a for a in actions if a.kind in ("shed", "restore", "safe-state")
    ][:12]
    rows = "".join(
        f"<tr><td>{a.at.astimezone(zone):%H:%M}</td><td>{a.kind}</td><td>{a.load}</td>"
        f"<td>{a.binding}</td><td>{a.expected_vnd:,.0f}</td><td class='why'>{a.reason}</td></tr>"
        for a in sorted(shown, key=lambda a: a.at)
    )
    counts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
    return (
        f"<h4>{name}: actions ({counts}); the first of each kind, with their reasons</h4>"
        "<table><tr><th>time</th><th>action</th><th>load</th><th>binding</th>"
        f"<th>expected VND</th><th class='why'>why</th></tr>{rows}</table>"
    )


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; a `ConfigError` names each problem's file, line,
    column and field, what was expected and what was found, as for a site file."""
    return load_document(path, Scenario, checks=check_events)
