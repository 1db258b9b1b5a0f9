"""`edge-agent demo`: a simulated park (or one site's devices), a broker, the agents, and a
live view of both ends. The command itself is in `simulators.cli`.

The meter simulator listens on a free loopback port and the site's devices are pointed at
it. If nothing listens at the site's broker address, an embedded broker is started there
(Mosquitto when installed, else amqtt). A separate MQTT subscriber shows the summaries as
the park would receive them, so the view proves the whole path, not just the agent's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.table import Table

from drivers.opcua.config import OpcUaDevice
from edge_agent.agent import Agent
from edge_agent.clock import SystemClock
from edge_agent.config.loader import load_site
from edge_agent.config.schema import Device
from edge_agent.northbound.topics import Topics
from edge_agent.supervisor import run_until_signalled

from .broker import MosquittoBroker, find_mosquitto, is_listening
from .factory import build_plant, serve_plant
from .machines import PHYSICS, Furnace
from .meter import MeterModel
from .modbus_server import ModbusSimulator, SimulatedUnit
from .opcua_server import OpcUaSimulator, SimulatedMachine
from .ports import free_port
from .scenario import load_scenario
from .site import site_config

__all__ = ["run_demo"]

log = logging.getLogger(__name__)
_SHOWN = ("voltage_l1_v", "current_l1_a", "total_power_factor", "frequency_hz")
"""A meter's values worth a glance; a machine shows its first few points."""


@contextlib.asynccontextmanager
async def _broker(host: str, port: int, console: Console) -> AsyncIterator[str]:
    if await is_listening(host, port):
        yield f"existing broker at {host}:{port}"
        return
    if find_mosquitto() is not None:
        async with MosquittoBroker(port):
            yield f"embedded Mosquitto at 127.0.0.1:{port}"
        return
    from amqtt.broker import Broker

    logging.getLogger("amqtt").setLevel(logging.WARNING)
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    console.print("[yellow]Mosquitto is not installed: using the embedded amqtt broker")
    try:
        yield f"embedded amqtt at 127.0.0.1:{port}"
    finally:
        await broker.shutdown()


def _console() -> Console:
    """On a terminal, log lines print above the live view instead of breaking it; in a log
    file, lines are not wrapped at 80 columns."""
    console = Console(soft_wrap=not Console().is_terminal)
    if console.is_terminal:
        root = logging.getLogger()
        level = root.level
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.addHandler(RichHandler(console=console, show_path=False, log_time_format="%X"))
        root.setLevel(level)
        # The live view shows the summaries; their log lines would only scroll it.
        logging.getLogger("edge_agent.summariser").setLevel(logging.WARNING)
    return console


async def run_demo(site: Path, *, duration_s: float | None = None) -> int:
    console = _console()
    config = load_site(site)
    clock = SystemClock()
    meters = [d for d in config.devices if not isinstance(d, OpcUaDevice)]
    machines = [d for d in config.devices if isinstance(d, OpcUaDevice)]
    units = [
        SimulatedUnit(
            unit_id,
            device.points,
            MeterModel(clock, base_kw=150.0 + 40 * unit_id, seed=unit_id).values,
        )
        for unit_id, device in enumerate(meters, start=1)
    ]
    simulated = [SimulatedMachine(d, PHYSICS.get(d.model or "", Furnace)()) for d in machines]
    received: deque[dict[str, Any]] = deque(maxlen=6)

    with tempfile.TemporaryDirectory(prefix="edge-agent-demo-") as pki:
        async with (
            ModbusSimulator(units) as simulator,
            OpcUaSimulator(
                simulated, clock=clock, port=free_port(), pki=Path(pki) / "server"
            ) as machine_server,
            _broker(config.broker.host, config.broker.port, console) as broker_text,
        ):
            # One Modbus simulator serves every meter, each as its own unit id; one OPC UA
            # server every machine. The demo trusts its own simulator's certificate.
            trusted = Path(pki) / "trusted"
            trusted.mkdir()
            (trusted / "simulator.der").write_bytes(machine_server.certificate.read_bytes())
            devices: list[Device] = []
            unit = 0
            for device in config.devices:
                if isinstance(device, OpcUaDevice):
                    security = device.security.model_copy(
                        update={
                            "trusted": trusted,
                            "rejected": Path(pki) / "rejected",
                            "certificate": Path(pki) / "own" / "agent.der",
                            "private_key": Path(pki) / "own" / "agent-key.pem",
                        }
                    )
                    devices.append(
                        device.model_copy(
                            update={"endpoint": machine_server.url, "security": security}
                        )
                    )
                else:
                    unit += 1
                    devices.append(
                        device.model_copy(
                            update={"host": "127.0.0.1", "port": simulator.port, "unit": unit}
                        )
                    )
            outbox = config.outbox.model_copy(update={"path": Path(pki) / "outbox.sqlite"})
            config = config.model_copy(update={"devices": devices, "outbox": outbox})
            agent = Agent(config, clock)
            topics = Topics(config.broker.topic_prefix, config.site.park, config.site.name)
            console.print(
                f"[bold]edge-agent demo[/]: site {config.site.park}/{config.site.name}; "
                f"Modbus meter simulator on 127.0.0.1:{simulator.port}; OPC UA machines at "
                f"{machine_server.url}; {broker_text}; summaries every "
                f"{config.summary.interval_s} s. Ctrl-C to stop."
            )

            await _run_live(
                console,
                [agent],
                received=received,
                host=config.broker.host,
                port=config.broker.port,
                topic=f"{topics.base}/devices/+/summary",
                duration_s=duration_s,
            )
    console.print(
        f"Stopped. Summaries published: {agent.publisher.stats.published}; "
        f"still in the outbox: {agent.outbox.depth()}."
    )
    return 0


async def run_park_demo(scenario_file: Path, *, duration_s: float | None = None) -> int:
    """The demo park in real time: every factory's meter and machines served on loopback, one
    agent per factory, an embedded broker where none runs, and a live view of the park."""
    console = _console()
    # Real time: poll often and summarise every 10 s so that something happens on screen.
    scenario = load_scenario(scenario_file).model_copy(
        update={"poll_interval_s": 2, "summary_interval_s": 10}
    )
    clock = SystemClock()
    received: deque[dict[str, Any]] = deque(maxlen=9)
    host, port = "127.0.0.1", 1883
    with tempfile.TemporaryDirectory(prefix="edge-agent-demo-") as work:
        async with contextlib.AsyncExitStack() as stack:
            broker_text = await stack.enter_async_context(_broker(host, port, console))
            agents = []
            for index, factory in enumerate(scenario.factories):
                plant = await stack.enter_async_context(
                    serve_plant(
                        build_plant(scenario, index, factory, clock),
                        clock,
                        Path(work),
                        step_s=scenario.poll_interval_s,
                    )
                )
                config = site_config(scenario, factory, plant, broker_port=port, work=Path(work))
                agents.append(Agent(config, clock))
            console.print(
                f"[bold]edge-agent demo[/]: park {scenario.park}, "
                f"{len(agents)} factories from {scenario_file} (meters over Modbus, machines "
                f"over OPC UA, all simulated on loopback); {broker_text}; summaries every "
                f"{scenario.summary_interval_s} s. Ctrl-C to stop."
            )

            await _run_live(
                console,
                agents,
                received=received,
                host=host,
                port=port,
                # The incomers: a factory's whole demand (27 devices would crowd them out).
                topic=f"energy/v1/{scenario.park}/+/devices/incomer/summary",
                duration_s=duration_s,
            )
    published = sum(a.publisher.stats.published for a in agents)
    console.print(
        f"Stopped. Summaries published: {published}; still waiting: "
        f"{sum(a.outbox.depth() for a in agents)}. For a whole simulated day in "
        f"minutes, with a report: edge-agent simulate {scenario_file}"
    )
    return 0


async def _run_live(
    console: Console,
    agents: list[Agent],
    *,
    received: deque[dict[str, Any]],
    host: str,
    port: int,
    topic: str,
    duration_s: float | None,
) -> None:
    """The agents, a subscriber watching `topic` as the park would, and the live view, until
    Ctrl-C (or `duration_s`); the agents stop gracefully, the helpers are cancelled."""

    async def main(stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            for agent in agents:
                group.create_task(agent.run(stop), name=f"agent {agent.config.site.name}")
            helpers = [
                group.create_task(_watch_broker(host, port, topic, received), name="subscriber"),
                group.create_task(_show(console, agents, received), name="view"),
            ]
            if duration_s is not None:
                helpers.append(group.create_task(_stop_after(duration_s, stop), name="timer"))
            await stop.wait()
            for task in helpers:
                task.cancel()

    await run_until_signalled(main)


async def _stop_after(seconds: float, stop: asyncio.Event) -> None:
    await asyncio.sleep(seconds)
    stop.set()


async def _watch_broker(host: str, port: int, topic: str, received: deque[dict[str, Any]]) -> None:
    """Subscribe as the park would, and keep the last summaries that arrived."""
    while True:
        try:
            async with aiomqtt.Client(host, port, identifier="edge-agent-demo-viewer") as client:
                await client.subscribe(topic, qos=1)
                async for message in client.messages:
                    received.appendleft(json.loads(bytes(message.payload)))  # type: ignore[arg-type, unused-ignore]
        except aiomqtt.MqttError:
            await asyncio.sleep(1.0)  # the embedded broker is starting or gone; try again


async def _show(console: Console, agents: list[Agent], received: deque[dict[str, Any]]) -> None:
    """Redraw once a second on a terminal; elsewhere (a log), print each summary received."""
    seen: set[tuple[str, int]] = set()
    clock = agents[0].clock
    with (
        Live(console=console, auto_refresh=False, transient=False)
        if console.is_terminal
        else contextlib.nullcontext() as live
    ):
        while True:
            if live is not None:
                live.update(_view(agents, received, clock.now()), refresh=True)
            else:
                for summary in reversed(received):
                    if (summary["site"], summary["seq"]) not in seen:
                        seen.add((summary["site"], summary["seq"]))
                        console.print("received at broker: " + _summary_line(summary))
            await clock.sleep(1.0)


def _cell(agent: Agent, point: str | None, now: datetime) -> str:
    reading = agent.image.get(point, now) if point else None
    if reading is None:
        return "-"
    if reading.value is None:
        return f"[red]{reading.quality.value}"
    if isinstance(reading.value, bool):
        return "on" if reading.value else "off"
    return f"{float(reading.value):,.2f}"


def _view(agents: list[Agent], received: deque[dict[str, Any]], now: datetime) -> Group:
    readings = Table(title=f"Live readings  {now.astimezone(UTC):%H:%M:%S} UTC", expand=False)
    for column, justify in (
        ("site", "left"),
        ("device", "left"),
        ("power kW", "right"),
        ("energy kWh", "right"),
        ("other values", "left"),
        ("polls", "right"),
        ("link", "left"),
    ):
        readings.add_column(column, justify=justify)  # type: ignore[arg-type]
    for agent in agents:
        device_stats = {d: p.stats for p in agent.pollers for d in p.stats.devices}
        for device in agent.config.devices:
            poller_stats = device_stats[device.name]
            stats = poller_stats.devices[device.name]
            by_role = {p.role: f"{device.name}/{n}" for n, p in device.points.items() if p.role}
            others = [n for n in _SHOWN if n in device.points] or [
                n for n, p in device.points.items() if not p.role and not getattr(p, "method", None)
            ][:3]
            other = "  ".join(f"{n} {_cell(agent, f'{device.name}/{n}', now)}" for n in others)
            link = (
                "[red]down"
                if not poller_stats.connected
                else "[yellow]degraded"
                if stats.degraded
                else "[green]up"
            )
            readings.add_row(
                agent.config.site.name,
                device.name,
                _cell(agent, by_role.get("active_power_kw"), now),
                _cell(agent, by_role.get("import_energy_kwh"), now),
                other,
                str(stats.polls),
                link,
            )
    published = sum(a.publisher.stats.published for a in agents)
    waiting = sum(a.outbox.depth() for a in agents)
    up = sum(a.publisher.stats.connected for a in agents)
    summaries = Table(
        title=f"Summaries received at the broker (publishers connected {up} of "
        f"{len(agents)}, published {published}, waiting {waiting})"
    )
    for column in (
        "seq",
        "site",
        "device",
        "interval (UTC)",
        "energy kWh",
        "avg kW",
        "max kW",
        "cost VND",
        "good",
    ):
        summaries.add_column(column, justify="right")
    for s in received:
        summaries.add_row(*_summary_cells(s))
    controlled = [a for a in agents if a.controller is not None]
    if not controlled:
        return Group(readings, summaries)
    return Group(readings, _control_view(controlled, now), summaries)


def _control_view(agents: list[Agent], now: datetime) -> Table:
    """Demand against the limit, the loads, and the last actions with their reasons."""
    table = Table(title="Control: billing-window demand against the limit, and the last actions")
    for column in ("site", "mode", "window kW", "limit kW", "loads", "last actions (why)"):
        table.add_column(column, justify="left")
    for agent in agents:
        control = agent.controller
        assert control is not None
        projected = control.projected_kw
        over = projected is not None and projected > control.limit_kw
        window = "-" if projected is None else f"{'[red]' if over else '[green]'}{projected:,.0f}"
        states = control.guard.states.values()
        loads = (
            f"{sum(s.on for s in states)} on, "
            f"{sum(not s.on and s.held_by == 'limiter' for s in states)} shed, "
            f"{sum(not s.on and s.held_by == 'plan' for s in states)} deferred"
        )
        actions = "\n".join(
            f"{a.at.astimezone(UTC):%H:%M:%S} {a.reason[:110]}"
            + ("" if a.written or a.refused else " [dim](advisory)")
            + (f" [yellow](refused: {a.refused})" if a.refused else "")
            for a in control.last_actions[-3:]
        )
        table.add_row(
            agent.config.site.name,
            "advisory" if control.guard.advisory else "active",
            window,
            f"{control.limit_kw:,.0f}"
            + ("" if control.limit_source == "demand limit" else " (DR)"),
            loads,
            actions or "-",
        )
    return table


def _summary_cells(s: dict[str, Any]) -> list[str]:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    return [
        str(s["seq"]),
        s["site"],
        s["device"],
        f"{s['interval_start'][11:19]}-{s['interval_end'][11:19]}",
        num(s["energy_import_kwh"], ".3f"),
        num(s["power_avg_kw"], ".1f"),
        num(s["power_max_kw"], ".1f"),
        num(s.get("cost_vnd"), ",.0f"),
        num(s["good_ratio"], ".0%"),
    ]


def _summary_line(s: dict[str, Any]) -> str:
    seq, site, device, interval, energy, avg, peak, cost, good = _summary_cells(s)
    return (
        f"#{seq} {site}/{device} {interval}  energy {energy} kWh  avg {avg} kW  "
        f"max {peak} kW  cost {cost} VND  good {good}"
    )
