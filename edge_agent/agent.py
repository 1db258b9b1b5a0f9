"""One factory's agent: the pollers, the summariser and the publisher, wired together.

`Agent.run()` owns every task in one TaskGroup. It returns when `stop` is set: the pollers
and the summariser are cancelled first, then the publisher gets a bounded moment to send what
is waiting and to say `offline`. A fault inside any device never reaches this level.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from drivers.base import Driver
from drivers.modbus.driver import ModbusLineDriver
from drivers.opcua.config import OpcUaDevice
from drivers.opcua.driver import OpcUaDriver
from drivers.registry import modbus_lines

from . import __version__
from .backoff import Backoff
from .changes import ChangeFilter, Deadband
from .clock import Clock
from .config.schema import Device, SiteConfig
from .control.controller import Controller
from .model import PointId, Value, count
from .northbound.commands import Commands
from .northbound.mqtt import MqttPublisher
from .northbound.outbox import Outbox
from .northbound.sqlite_outbox import SqliteOutbox
from .ops.http import OpsServer
from .ops.labels import where_devices_are
from .ops.logs import current_site
from .ops.metrics import AgentMetrics, LineStats
from .polling import DevicePolicy, Poller
from .process_image import ProcessImage
from .summariser import Summariser

__all__ = ["Agent"]

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 3.0


def _stale_ages(devices: list[Device]) -> dict[str, timedelta]:
    ages = {}
    for device in devices:
        for name, point in device.points.items():
            interval = point.poll_interval_s or device.poll_interval_s
            ages[f"{device.name}/{name}"] = timedelta(seconds=device.stale_after_s or 3 * interval)
    return ages


def _deadbands(devices: list[Device]) -> dict[str, Deadband]:
    return {
        f"{device.name}/{name}": Deadband(point.deadband, point.deadband_pct)
        for device in devices
        for name, point in device.points.items()
        if point.deadband is not None or point.deadband_pct is not None
    }


class Agent:
    def __init__(
        self,
        config: SiteConfig,
        clock: Clock,
        *,
        outbox: Outbox | None = None,
        publish: bool = True,
        connect: Callable[[Sequence[Device]], Driver] | None = None,
    ) -> None:
        """`outbox` defaults to the durable one at the site's `outbox.path`; `publish=False`
        (`edge-agent run --no-publish`) runs without a broker: summaries stay queued.
        `connect` serves each line's (or OPC UA server's) devices with another driver: a
        bench's in-process plant instead of the protocol stacks."""
        self.config = config
        self.clock = clock
        self.publish = publish
        settings = config.outbox
        self.outbox: Outbox = outbox or SqliteOutbox(
            settings.path,
            max_messages=settings.max_messages,
            max_age_s=settings.max_age_s,
            fsync=settings.fsync,
        )
        self.image = ProcessImage(_stale_ages(self.config.devices))
        self._where = where_devices_are(self.config)
        self.drivers: list[Driver] = []
        self.pollers: list[Poller] = []
        for line, devices in modbus_lines(self.config):
            policies = {
                d.name: DevicePolicy(d.degrade_after, 2 * d.poll_interval_s, d.degraded_retry_max_s)
                for d in devices
            }
            self._add(
                connect(devices) if connect else ModbusLineDriver(line, devices, self.clock),
                Backoff(line.reconnect_initial_s, line.reconnect_max_s),
                policies,
            )
        for device in self.config.devices:
            if isinstance(device, OpcUaDevice):
                self._add(
                    connect([device]) if connect else OpcUaDriver(device, self.clock),
                    Backoff(device.reconnect_initial_s, device.reconnect_max_s),
                    {},
                )
        self.summariser = Summariser(self.config, self.clock, self.outbox)
        self.image.subscribe(self.summariser.on_readings)
        self.changes = ChangeFilter(_deadbands(self.config.devices))
        self.image.subscribe(self.changes.on_readings)
        self.commands = Commands(self.config)
        self._driver_of = {name: d for d in self.drivers for name in d.devices}
        self.controller: Controller | None = None
        if self.config.control is not None:
            self.controller = Controller(
                self.config, self.clock, self.image, self._write, self.commands.inputs
            )
            self.commands.assess = self.controller.assess
            self.summariser.control = self.controller.report
        self.publisher = MqttPublisher(
            self.config.broker,
            self.config.site,
            self.outbox,
            self.clock,
            commands=self.commands,
        )
        self.metrics = AgentMetrics(
            self.config,
            self.clock,
            [LineStats(d.name, p.stats) for p, d in zip(self.pollers, self.drivers, strict=True)],
            self.outbox,
            self.publisher.stats if publish else None,
        )
        """What `/metrics` and `/health` show; the optimiser counts its actions here."""
        self.ops_server: OpsServer | None = None
        """Listening while `run()` runs, if the site sets `metrics.port`."""
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        """Set when `run()` has finished: polling stopped, the outbox drained (bounded)."""

    def _add(self, driver: Driver, backoff: Backoff, policies: dict[str, DevicePolicy]) -> None:
        self.drivers.append(driver)
        self.pollers.append(
            Poller(
                driver,
                self.image,
                self.clock,
                backoff,
                policies=policies,
                site=self.config.site.name,
                context={
                    d: self._where[d].log_fields() for d in driver.devices if d in self._where
                },
            )
        )

    async def _write(self, point: PointId, value: Value) -> None:
        """The guard's way to a device: through the driver that polls it."""
        await self._driver_of[point.partition("/")[0]].write(point, value)

    async def run(self, stop: asyncio.Event) -> None:
        site, broker = self.config.site, self.config.broker
        current_site.set(site.name)  # every log record of this agent's tasks names the site
        log.info(
            "edge-agent %s: site %s/%s, %s on %s, summaries every %d s %s",
            __version__,
            site.park,
            site.name,
            count(len(self.config.devices), "device"),
            count(len(self.drivers), "line"),
            self.config.summary.interval_s,
            f"to {broker.host}:{broker.port}" if self.publish else "kept (--no-publish)",
        )
        try:
            await self._run(stop)
        finally:
            self.stopped.set()

    async def _start_ops_server(self) -> OpsServer | None:
        """The metrics endpoint, if configured. An address in use is logged, not fatal: the
        agent's job is to measure, and `/health` being unreachable is itself an alarm."""
        settings = self.config.metrics
        if settings.port is None:
            return None
        server = OpsServer(
            host=settings.host,
            port=settings.port,
            metrics=self.metrics.render,
            health=self.metrics.health,
        )
        try:
            await server.start()
        except OSError as exc:
            log.error(
                "metrics: cannot listen on %s:%d (%s); running without /metrics and /health",
                settings.host,
                settings.port,
                exc,
            )
            return None
        self.ops_server = server
        return server

    async def _run(self, stop: asyncio.Event) -> None:
        server = await self._start_ops_server()
        self.metrics.started = self.clock.now()
        async with asyncio.TaskGroup() as group:
            serving = group.create_task(server.serve(), name="metrics") if server else None
            producers = [
                group.create_task(p.run(), name=f"poll {d.name}")
                for p, d in zip(self.pollers, self.drivers, strict=True)
            ]
            producers.append(group.create_task(self.summariser.run(), name="summariser"))
            control = None
            if self.controller is not None:
                control = group.create_task(self.controller.run(), name="control")
                self.clock.track(control)
            for task in producers:
                self.clock.track(task)
            publisher = (
                group.create_task(self.publisher.run(), name="publisher") if self.publish else None
            )
            self.started.set()
            await stop.wait()
            log.info(
                "stopping: %s waiting in the outbox",
                count(self.outbox.depth(), "summary", "summaries"),
            )
            if control is not None:
                # Before the drivers close: the loads go back to their safe state first.
                control.cancel()
                await asyncio.wait([control])
            for task in producers:
                task.cancel()
            if publisher is not None:
                await self._drain(publisher)
            if serving is not None:
                serving.cancel()

    async def _drain(self, publisher: asyncio.Task[None]) -> None:
        """Let the publisher send what is waiting and say `offline`, within a bound."""
        self.publisher.stop()
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await asyncio.shield(publisher)
        except TimeoutError:
            log.warning(
                "the broker did not take the last %d summaries in %.0f s; they stay in the outbox",
                self.outbox.depth(),
                DRAIN_TIMEOUT_S,
            )
            publisher.cancel()
