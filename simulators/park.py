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
import contextlib
import json
import random
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BeforeValidator, Field, PositiveFloat

from edge_agent.agent import Agent
from edge_agent.clock import Clock, SimClock
from edge_agent.config.base import Name, StrictModel
from edge_agent.config.loader import load_document, load_modbus_model, load_opcua_model
from edge_agent.config.schema import SiteConfig
from edge_agent.northbound.topics import Topics

from .broker import MosquittoBroker
from .events import (
    DeviceOutage,
    Event,
    MeterSilence,
    OpcUaServerDown,
    ParkEvents,
    check_events,
    timeline,
)
from .machines import PHYSICS, Machine, vary
from .meter import MeterModel
from .modbus_server import ModbusSimulator, SimulatedUnit
from .opcua_server import OpcUaSimulator, SimulatedMachine
from .park_link import ParkLink
from .ports import free_port

__all__ = ["Scenario", "load_scenario", "serve_factory", "simulate", "site_config"]


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


def _shifts(zone: str, night_share: float) -> Callable[[float], float]:
    tz = ZoneInfo(zone)

    def shape(t: float) -> float:
        hour = datetime.fromtimestamp(t, tz).hour + datetime.fromtimestamp(t, tz).minute / 60
        day = 6 <= hour < 22
        ramp = min(1.0, abs(hour - 6) / 0.5, abs(hour - 22) / 0.5)  # half-hour ramps
        level = 1.0 if day else night_share
        return night_share + (level - night_share) * ramp if day else level

    return shape


def _varied(machine: Machine, rng: random.Random) -> Machine:
    """No two machines of a park alike: sizes, loads and phases drawn from the seed."""
    return vary(machine, rng)


def site_config(
    scenario: Scenario,
    factory: FactorySpec,
    *,
    meter_port: int,
    urls: list[str],
    broker_port: int,
    work: Path,
) -> SiteConfig:
    """The site file a plant engineer would write for this factory, as a model."""
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
            "port": meter_port,
            "poll_interval_s": interval,
        }
    ]
    for machine, url in zip(factory.machines, urls, strict=True):
        model = load_opcua_model(machine.model)
        devices.append(
            {
                **model.model_dump(exclude={"name", "endpoint", "points"}),
                "name": machine.name,
                "endpoint": url,
                "mode": "read",
                "poll_interval_s": interval,
                "points": {n: p.model_dump() for n, p in model.points.items() if p.method is None},
            }
        )
    for device in devices:  # every point at the scenario's one interval
        for point in device["points"].values():
            point["poll_interval_s"] = None
    return SiteConfig.model_validate(
        {
            "site": {"name": factory.name, "park": scenario.park, "timezone": scenario.timezone},
            "broker": {"host": "127.0.0.1", "port": broker_port},
            "summary": {"interval_s": scenario.summary_interval_s, "settle_s": interval},
            "outbox": {"path": str(work / f"{factory.name}.sqlite")},
            "devices": devices,
        }
    )


@contextlib.asynccontextmanager
async def serve_factory(
    scenario: Scenario,
    index: int,
    factory: FactorySpec,
    clock: Clock,
    work: Path,
    *,
    outages: dict[str, DeviceOutage] | None = None,
) -> AsyncIterator[tuple[int, list[str]]]:
    """The factory's meter, and each machine on an OPC UA server of its own, as on a plant.

    `outages`, when given, is filled with a way to silence each device, by device name."""
    rng = random.Random(f"{scenario.seed}/{factory.name}")
    machines = [
        SimulatedMachine(load_opcua_model(m.model), _varied(PHYSICS[m.model](), rng))
        for m in factory.machines
    ]
    meter = MeterModel(
        clock,
        base_kw=factory.base_load_kw,
        seed=scenario.seed * 100 + index,
        shape=_shifts(scenario.timezone, factory.night_share),
        extra_kw=lambda: sum(m.physics.grid_kw() for m in machines),
    )
    points = load_modbus_model("eastron-sdm630").points
    async with contextlib.AsyncExitStack() as stack:
        modbus = await stack.enter_async_context(
            ModbusSimulator([SimulatedUnit(1, points, meter.values)])
        )
        if outages is not None:
            outages["incomer"] = MeterSilence(modbus, 1)
        urls = []
        for number, machine in enumerate(machines):
            server = await stack.enter_async_context(
                OpcUaSimulator(
                    [machine],
                    clock=clock,
                    port=free_port(),
                    pki=work / factory.name / str(number),
                    step_s=scenario.poll_interval_s,
                )
            )
            urls.append(server.url)
            if outages is not None:
                outages[factory.machines[number].name] = OpcUaServerDown(server)
        yield modbus.port, urls


async def simulate(
    scenario: Scenario, out: Path, *, progress: Callable[[float], None] | None = None
) -> dict[str, Any]:
    """Run the scenario; write `metrics.json` and `report.html` into `out`; the metrics."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    clock = SimClock(scenario.start)
    end = scenario.start + timedelta(hours=scenario.duration_h)
    # The last interval is summarised a settle time after the end: run until then.
    closing = end + timedelta(seconds=scenario.poll_interval_s + 1)
    steps = timeline(scenario.events, start=scenario.start, end=end, zone=scenario.timezone)
    with tempfile.TemporaryDirectory(prefix="edge-agent-bench-") as tmp:
        work = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            broker = await stack.enter_async_context(MosquittoBroker(free_port()))
            agents: dict[str, Agent] = {}
            outages: dict[tuple[str, str], DeviceOutage] = {}
            for index, factory in enumerate(scenario.factories):
                devices: dict[str, DeviceOutage] = {}
                meter_port, urls = await stack.enter_async_context(
                    serve_factory(scenario, index, factory, clock, work, outages=devices)
                )
                outages.update({(factory.name, name): o for name, o in devices.items()})
                config = site_config(
                    scenario,
                    factory,
                    meter_port=meter_port,
                    urls=urls,
                    broker_port=broker.port,
                    work=work,
                )
                agents[factory.name] = Agent(config, clock)
            link = await stack.enter_async_context(
                ParkLink(
                    broker.port,
                    [
                        Topics(a.config.broker.topic_prefix, scenario.park, name)
                        for name, a in agents.items()
                    ],
                )
            )
            events = ParkEvents(
                zone=scenario.timezone, broker=broker, link=link, agents=agents, outages=outages
            )
            stop = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                for agent in agents.values():
                    group.create_task(agent.run(stop))
                for agent in agents.values():
                    await agent.started.wait()
                    async with asyncio.timeout(30):  # so that a command at the start is heard
                        await agent.publisher.ready.wait()
                step = timedelta(seconds=scenario.summary_interval_s)
                while clock.now() < closing:
                    # The next step on the grid from the start, or the next event's moment.
                    target = min(
                        closing,
                        scenario.start + step * ((clock.now() - scenario.start) // step + 1),
                    )
                    if steps and steps[0].when <= target:
                        target = steps[0].when
                    await clock.advance_to(target)
                    while steps and steps[0].when <= clock.now():
                        await events.apply(steps.pop(0))
                    if progress:
                        progress((clock.now() - scenario.start) / (closing - scenario.start))
                stop.set()
                for agent in agents.values():  # each drains its outbox before it stops
                    await agent.stopped.wait()
                # The last ones may still be on their way.
                await link.arrived(sum(a.publisher.stats.published for a in agents.values()))
    metrics = _metrics(scenario, link.summaries)
    metrics["events"] = events.records
    metrics["delivery"] = {
        "summaries_received": sum(len(rows) for rows in link.summaries.values()),
        "repeats": link.duplicates,
        "left_in_outboxes": sum(a.outbox.depth() for a in agents.values()),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    (out / "report.html").write_text(_report(scenario, metrics, link.summaries))
    return metrics


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


def _report(
    scenario: Scenario, metrics: dict[str, Any], summaries: dict[str, list[dict[str, Any]]]
) -> str:
    """A page a plant manager can read: the table, and each factory's demand as a plot."""
    plots = []
    for name, rows in summaries.items():
        meter = sorted(
            (r for r in rows if r["device"] == "incomer" and r["power_avg_kw"] is not None),
            key=lambda r: r["interval_start"],
        )
        if not meter:
            continue
        top = max(r["power_max_kw"] for r in meter) * 1.1
        width, height = 720, 160
        step = width / max(1, len(meter) - 1)
        line = " ".join(
            f"{i * step:.1f},{height - r['power_avg_kw'] / top * height:.1f}"
            for i, r in enumerate(meter)
        )
        peak = [
            f"<rect x='{i * step:.1f}' y='0' width='{step:.1f}' height='{height}' fill='#fde2e2'/>"
            for i, r in enumerate(meter)
            if r["tariff_band"] == "peak"
        ]
        # Local-time labels under the plot, about every three hours (or every row if short).
        zone = ZoneInfo(scenario.timezone)
        every = max(1, len(meter) // 8)
        ticks = "".join(
            f"<text x='{i * step:.1f}' y='{height + 14}' font-size='10' text-anchor='middle'>"
            f"{datetime.fromisoformat(r['interval_start']).astimezone(zone):%H:%M}</text>"
            f"<line x1='{i * step:.1f}' x2='{i * step:.1f}' y1='{height}' y2='{height + 4}' "
            f"stroke='#888'/>"
            for i, r in enumerate(meter)
            if i % every == 0
        )
        half = height / 2
        plots.append(
            f"<h3>{name}: average demand (kW) per {scenario.summary_interval_s // 60} min, "
            f"local time; peak-tariff hours shaded</h3>"
            f"<svg width='{width + 40}' height='{height + 20}'><g transform='translate(30,0)'>"
            f"<rect width='{width}' height='{height}' fill='none' stroke='#ccc'/>"
            f"{''.join(peak)}<polyline fill='none' stroke='#1f5fa8' stroke-width='1.5' "
            f"points='{line}'/>{ticks}</g>"
            f"<text x='0' y='10' font-size='10'>{top:.0f}</text>"
            f"<text x='0' y='{half + 4:.0f}' font-size='10'>{top / 2:.0f}</text>"
            f"<text x='0' y='{height:.0f}' font-size='10'>0</text></svg>"
        )
    rows_html = "".join(
        f"<tr><td>{n}</td><td>{f['energy_kwh']:,.1f}</td><td>{f['peak_window_demand_kw']:,.1f}"
        f"</td><td>{f['cost_vnd']:,}</td><td>{f['co2_kg']:,.1f}</td>"
        f"<td>{(f['data_quality'] or 0):.1%}</td></tr>"
        for n, f in metrics["factories"].items()
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{scenario.name}: simulated {scenario.duration_h:g} h</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:4px 10px;text-align:right}}
th:first-child,td:first-child{{text-align:left}}</style></head><body>
<h1>{scenario.park}: {scenario.name}, {scenario.duration_h:g} simulated hours from
{scenario.start.isoformat()}, seed {scenario.seed}</h1>
<table><tr><th>factory</th><th>energy kWh</th><th>peak 15-min demand kW</th>
<th>cost VND</th><th>CO2 kg</th><th>data quality</th></tr>{rows_html}</table>
{"".join(plots)}</body></html>"""


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; a `ConfigError` names each problem's file, line,
    column and field, what was expected and what was found, as for a site file."""
    return load_document(path, Scenario, checks=check_events)
