"""`edge-agent demo`: a simulated meter, a broker, the agent, and a live view of both ends.

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
import socket
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.table import Table

from drivers.opcua.config import OpcUaDevice
from simulators.broker import MosquittoBroker, find_mosquitto, is_listening
from simulators.machines import Chiller, Furnace, InjectionMoulder, Machine
from simulators.meter import MeterModel
from simulators.modbus_server import ModbusSimulator, SimulatedUnit
from simulators.opcua_server import OpcUaSimulator, SimulatedMachine

from .agent import Agent
from .clock import SystemClock
from .config.loader import load_site
from .config.schema import Device, SiteConfig
from .northbound.topics import Topics
from .supervisor import run_until_signalled

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


PHYSICS: dict[str, Callable[[], Machine]] = {
    "electric-furnace": Furnace,
    "injection-moulder": InjectionMoulder,
    "process-chiller": Chiller,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
                simulated, clock=clock, port=_free_port(), pki=Path(pki) / "server"
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
            console.print(
                f"[bold]edge-agent demo[/]: site {config.site.park}/{config.site.name}; "
                f"Modbus meter simulator on 127.0.0.1:{simulator.port}; OPC UA machines at "
                f"{machine_server.url}; {broker_text}; summaries every "
                f"{config.summary.interval_s} s. Ctrl-C to stop."
            )

            async def main(stop: asyncio.Event) -> None:
                async with asyncio.TaskGroup() as group:
                    group.create_task(agent.run(stop), name="agent")
                    helpers = [
                        group.create_task(_watch_broker(config, received), name="subscriber"),
                        group.create_task(_show(console, agent, received), name="view"),
                    ]
                    if duration_s is not None:
                        helpers.append(
                            group.create_task(_stop_after(duration_s, stop), name="timer")
                        )
                    await stop.wait()
                    for task in helpers:
                        task.cancel()

            await run_until_signalled(main)
    console.print(
        f"Stopped. Summaries published: {agent.publisher.stats.published}; "
        f"still in the outbox: {agent.outbox.depth()}."
    )
    return 0


async def _stop_after(seconds: float, stop: asyncio.Event) -> None:
    await asyncio.sleep(seconds)
    stop.set()


async def _watch_broker(config: SiteConfig, received: deque[dict[str, Any]]) -> None:
    """Subscribe as the park would, and keep the last summaries that arrived."""
    topics = Topics(config.broker.topic_prefix, config.site.park, config.site.name)
    while True:
        try:
            async with aiomqtt.Client(
                config.broker.host, config.broker.port, identifier=f"demo-viewer-{config.site.name}"
            ) as client:
                await client.subscribe(f"{topics.base}/devices/+/summary", qos=1)
                async for message in client.messages:
                    received.appendleft(json.loads(bytes(message.payload)))  # type: ignore[arg-type, unused-ignore]
        except aiomqtt.MqttError:
            await asyncio.sleep(1.0)  # the embedded broker is starting or gone; try again


async def _show(console: Console, agent: Agent, received: deque[dict[str, Any]]) -> None:
    """Redraw once a second; on a terminal as a live table, elsewhere as log lines."""
    seen_seq: set[int] = set()
    with (
        Live(console=console, auto_refresh=False, transient=False)
        if console.is_terminal
        else contextlib.nullcontext() as live
    ):
        while True:
            now = agent.clock.now()
            if live is not None:
                live.update(_view(agent, received, now), refresh=True)
            else:
                for summary in reversed(received):
                    if summary["seq"] not in seen_seq:
                        seen_seq.add(summary["seq"])
                        console.print("received at broker: " + _summary_line(summary))
            await agent.clock.sleep(1.0)


def _cell(agent: Agent, point: str | None, now: datetime) -> str:
    reading = agent.image.get(point, now) if point else None
    if reading is None:
        return "-"
    if reading.value is None:
        return f"[red]{reading.quality.value}"
    if isinstance(reading.value, bool):
        return "on" if reading.value else "off"
    return f"{float(reading.value):,.2f}"


def _view(agent: Agent, received: deque[dict[str, Any]], now: datetime) -> Group:
    readings = Table(title=f"Live readings  {now.astimezone(UTC):%H:%M:%S} UTC", expand=False)
    for column, justify in (
        ("device", "left"),
        ("power kW", "right"),
        ("energy kWh", "right"),
        ("other values", "left"),
        ("polls", "right"),
        ("link", "left"),
    ):
        readings.add_column(column, justify=justify)  # type: ignore[arg-type]
    device_stats = {d: p.stats for p in agent.pollers for d in p.stats.devices}
    for device in agent.config.devices:
        poller_stats = device_stats[device.name]
        stats = poller_stats.devices[device.name]
        by_role = {p.role: f"{device.name}/{n}" for n, p in device.points.items() if p.role}
        others = [n for n in _SHOWN if n in device.points] or [
            n for n, p in device.points.items() if not p.role and not getattr(p, "method", None)
        ][:4]
        other = "  ".join(f"{n} {_cell(agent, f'{device.name}/{n}', now)}" for n in others)
        link = (
            "[red]down"
            if not poller_stats.connected
            else "[yellow]degraded"
            if stats.degraded
            else "[green]up"
        )
        readings.add_row(
            device.name,
            _cell(agent, by_role.get("active_power_kw"), now),
            _cell(agent, by_role.get("import_energy_kwh"), now),
            other,
            str(stats.polls),
            link,
        )

    publisher = agent.publisher.stats
    broker = "[green]connected" if publisher.connected else f"[red]down ({publisher.last_error})"
    summaries = Table(
        title=f"Summaries received at the broker (publisher {broker}[/], "
        f"published {publisher.published}, outbox {agent.outbox.depth()})"
    )
    for column in ("seq", "device", "interval (UTC)", "energy kWh", "avg kW", "max kW", "good"):
        summaries.add_column(column, justify="right")
    for s in received:
        summaries.add_row(*_summary_cells(s))
    return Group(readings, summaries)


def _summary_cells(s: dict[str, Any]) -> list[str]:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    return [
        str(s["seq"]),
        s["device"],
        f"{s['interval_start'][11:19]}-{s['interval_end'][11:19]}",
        num(s["energy_import_kwh"], ".3f"),
        num(s["power_avg_kw"], ".1f"),
        num(s["power_max_kw"], ".1f"),
        num(s["good_ratio"], ".0%"),
    ]


def _summary_line(s: dict[str, Any]) -> str:
    seq, device, interval, energy, avg, peak, good = _summary_cells(s)
    return (
        f"#{seq} {device} {interval}  energy {energy} kWh  avg {avg} kW  max {peak} kW  good {good}"
    )
