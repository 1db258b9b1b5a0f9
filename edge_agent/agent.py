"""One factory's agent: the pollers, the summariser and the publisher, wired together.

`Agent.run()` owns every task in one TaskGroup. It returns when `stop` is set: control puts
its loads in their safe state, the summariser summarises the interval that has ended (if it
is still in its settle time, with the readings taken so far), the pollers are cancelled,
then the publisher gets a bounded moment to send what is waiting and to say `offline`. A
fault inside any device never reaches this level.

A reload (SIGHUP sets `reload_requested`) re-reads the site file inside that TaskGroup and
applies only what changed in its devices: the pollers of changed lines restart, the others
keep running untouched (see `reload.py`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import ValidationError

from drivers.base import Driver
from drivers.registry import Line

from . import __version__
from .backoff import Backoff
from .clock import Clock, SystemClock
from .config.loader import ConfigError, load_site
from .config.schema import Device, SiteConfig, stale_age_s
from .control.controller import Controller
from .model import PointId, Value, count
from .northbound.command_store import CommandStore
from .northbound.commands import Commands
from .northbound.mqtt import MqttPublisher, broker_backoff
from .northbound.outbox import Outbox
from .northbound.sqlite_outbox import SqliteOutbox
from .ops.http import OpsServer
from .ops.labels import where_devices_are
from .ops.logs import current_site
from .ops.loop_lag import LoopLag
from .ops.metrics import AgentMetrics, LineStats
from .polling import Poller
from .process_image import ProcessImage
from .reload import ReloadPlan, plan_reload, units_of, with_devices
from .summariser import Summariser

__all__ = ["Agent"]

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 3.0


def _stale_ages(devices: list[Device]) -> dict[str, timedelta]:
    return {
        f"{device.name}/{name}": timedelta(seconds=stale_age_s(device, name))
        for device in devices
        for name in device.points
    }


@dataclass(slots=True)
class _Polling:
    """One poller unit as it runs: its line of the site file, driver, poller and task."""

    line: Line
    driver: Driver
    poller: Poller
    task: asyncio.Task[None] | None = None


class Agent:
    def __init__(
        self,
        config: SiteConfig,
        clock: Clock,
        *,
        outbox: Outbox | None = None,
        publish: bool = True,
        connect: Callable[[Sequence[Device]], Driver] | None = None,
        site_file: Path | None = None,
        seed: int | None = None,
        commands_file: Path | None = None,
    ) -> None:
        """`outbox` defaults to the durable one at the site's `outbox.path`; `publish=False`
        (`edge-agent run --no-publish`) runs without a broker: summaries stay queued.
        `connect` serves each line's (or OPC UA server's) devices with another driver: a
        bench's in-process plant instead of the protocol stacks. `site_file` is what
        `reload()` reads again. `seed` makes the reconnect jitter repeatable, for a bench
        whose same scenario and seed must give the same day. `commands_file` keeps the
        park's accepted commands over a restart; by default `commands.json` beside the
        durable outbox (none with an outbox given: a test's or a bench's)."""
        self._seed = seed
        self.config = config
        self.clock = clock
        self.publish = publish
        self.site_file = site_file
        self._connect = connect
        settings = config.outbox
        self.outbox: Outbox = outbox or SqliteOutbox(
            settings.path,
            max_messages=settings.max_messages,
            max_age_s=settings.max_age_s,
            fsync=settings.fsync,
        )
        self.outbox.clock = clock  # one clock: a message's age and its historical mark
        self.image = ProcessImage(_stale_ages(self.config.devices))
        self._where = where_devices_are(self.config)
        self._polling = {key: self._build(line) for key, line in units_of(self.config).items()}
        self.drivers: list[Driver] = [p.driver for p in self._polling.values()]
        self.pollers: list[Poller] = [p.poller for p in self._polling.values()]
        """In the order of the site file: Modbus lines, then OPC UA devices; a reload
        replaces both lists."""
        self.summariser = Summariser(self.config, self.clock, self.outbox)
        self.image.subscribe(self.summariser.on_readings)
        if commands_file is None and outbox is None:
            commands_file = settings.path.with_name("commands.json")
        self.commands = Commands(self.config, CommandStore(commands_file))
        self._driver_of = {name: d for d in self.drivers for name in d.devices}
        self.controller: Controller | None = None
        if self.config.control is not None:
            self.controller = Controller(
                self.config, self.clock, self.image, self._write, self.commands.inputs
            )
            self.commands.assess = self.controller.assess
            self.commands.meter_known = self.controller.meter_known
            self.summariser.control = self.controller.report
        broker = self.config.broker
        self.publisher = MqttPublisher(
            broker,
            self.config.site,
            self.outbox,
            self.clock,
            commands=self.commands,
            backoff=broker_backoff(broker, rng=self._rng("broker")),
        )
        self.metrics = AgentMetrics(
            self.config,
            self.clock,
            self._line_stats(),
            self.outbox,
            self.publisher.stats if publish else None,
        )
        """What `/metrics` and `/health` show; the optimiser counts its actions here."""
        self.ops_server: OpsServer | None = None
        """Listening while `run()` runs, if the site sets `metrics.port`."""
        self.reload_requested = asyncio.Event()
        """Set (by SIGHUP) to re-read the site file; the agent clears it when it starts."""
        self.reloaded = asyncio.Event()
        """Set when a reload has finished, applied or refused; `last_reload` says which."""
        self.last_reload: ReloadPlan | None = None
        """What the last reload applied; None when it was refused (or none ran yet)."""
        self.reloads_tried = 0
        """Reloads begun; the number is in every refusal, so that a second refusal of the
        same file is logged again rather than folded as a repeat of the first."""
        self._group: asyncio.TaskGroup | None = None
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        """Set when `run()` has finished: polling stopped, the outbox drained (bounded)."""

    def _rng(self, name: str) -> random.Random:
        """Jitter: from the system, or repeatable per line under a bench's seed."""
        if self._seed is None:
            return random.Random()
        return random.Random(f"{self._seed}/{self.config.site.name}/{name}")

    def _build(self, line: Line) -> _Polling:
        """The driver and poller of one line, not yet started."""
        protocol, devices = line.protocol, list(line.devices)
        driver = (
            self._connect(devices)
            if self._connect
            else protocol.open(line.settings, devices, self.clock)
        )
        backoff = Backoff(
            line.settings.reconnect_initial_s,
            line.settings.reconnect_max_s,
            # By its devices' names: a gateway's line is named by its host and port, which a
            # bench takes free, so the same day would not repeat.
            rng=self._rng("+".join(sorted(d.name for d in devices))),
        )
        policies = {d.name: p for d in devices if (p := protocol.policy(d)) is not None}
        poller = Poller(
            driver,
            self.image,
            self.clock,
            backoff,
            policies=policies,
            site=self.config.site.name,
            context={d: self._where[d].log_fields() for d in driver.devices if d in self._where},
        )
        return _Polling(line, driver, poller)

    def _start(self, polling: _Polling) -> None:
        if self._group is None:  # not running yet: `_run` starts it
            return
        polling.task = self._group.create_task(
            polling.poller.run(), name=f"poll {polling.driver.name}"
        )
        self.clock.track(polling.task)

    async def _stop(self, polling: _Polling) -> None:
        """Cancel the poller and wait until its driver has closed (bounded by the driver)."""
        if polling.task is not None:
            polling.task.cancel()
            await asyncio.wait([polling.task])

    async def reload(self) -> ReloadPlan | None:
        """Read the site file again and apply what changed in its devices.

        Returns what was applied, or None when the file was refused: every problem is then
        logged at ERROR, and nothing changes."""
        self.reloads_tried += 1
        attempt = self.reloads_tried
        if self.site_file is None:
            log.error(
                "reload #%d refused: the agent was not started from a site file; nothing to "
                "re-read",
                attempt,
            )
            return None
        try:
            # In a thread: parsing and validating take tens of milliseconds of CPU, which the
            # pollers that keep running should not wait for.
            new = await asyncio.to_thread(load_site, self.site_file)
        except ConfigError as exc:
            shown = exc.problems[: ConfigError.SHOWN]
            for problem in shown:
                log.error("reload #%d refused: %s", attempt, problem)
            if len(exc.problems) > len(shown):
                more = count(len(exc.problems) - len(shown), "more problem")
                log.error("reload #%d refused: ... and %s", attempt, more)
            log.error(
                "reload #%d refused: %s in %s; kept the running configuration",
                attempt,
                count(len(exc.problems), "problem"),
                self.site_file,
            )
            return None
        return await self.apply(new)

    async def apply(self, new: SiteConfig) -> ReloadPlan | None:
        """Go from the running devices to `new`'s: stop, start or restart only the pollers
        whose line or devices changed. Other sections run on as they are; a change to them is
        logged as needing a restart. None when `new`'s devices cannot replace the running
        ones (the running control section needs one of them)."""
        plan = plan_reload(self.config, new)
        try:
            applied = with_devices(self.config, new)
        except ValidationError as exc:
            reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            log.error(
                "reload #%d refused: the new devices do not fit the running control section "
                "(%s); control changes need a restart; kept the running configuration",
                self.reloads_tried,
                reasons,
            )
            return None
        for section in plan.needs_restart:
            if section == "control":
                log.warning(
                    "reload: control changes need a restart; the controller runs on as before"
                )
            else:
                log.warning(
                    "reload: `%s` changed, which needs a restart (`edge-agent run` again); "
                    "running with the previous settings",
                    section,
                )
        if plan.touches_devices:
            for key in plan.stop + plan.restart:
                await self._stop(self._polling.pop(key))
            self._follow(applied, plan)
        self.config = applied
        self._warn_control_limits(plan)
        log.info("reload: %s", plan.describe())
        return plan

    def _follow(self, applied: SiteConfig, plan: ReloadPlan) -> None:
        """Every part that knows the device set takes the new one; then the new pollers
        start, after the image has dropped the points that are gone."""
        self._where = where_devices_are(applied)
        self.image.retain(_stale_ages(applied.devices))
        self.summariser.apply(applied.devices)
        units = units_of(applied)
        for key in plan.restart + plan.start:
            self._polling[key] = self._build(units[key])
            self._start(self._polling[key])
        self._polling = {key: self._polling[key] for key in units}
        self.drivers = [p.driver for p in self._polling.values()]
        self.pollers = [p.poller for p in self._polling.values()]
        self._driver_of = {name: d for d in self.drivers for name in d.devices}
        self.metrics.follow(applied, self._line_stats())

    def _warn_control_limits(self, plan: ReloadPlan) -> None:
        if self.controller is None or self.config.control is None:
            return
        used = {self.config.control.meter, *(load.device for load in self.config.control.loads)}
        for name in sorted(used.intersection(plan.changed)):
            log.warning(
                "reload: device %s is polled with its new settings, but control keeps the "
                "point limits it started with; control changes need a restart",
                name,
            )

    def _line_stats(self) -> list[LineStats]:
        return [LineStats(p.driver.name, p.poller.stats) for p in self._polling.values()]

    async def _reloads(self) -> None:
        """Serve reload requests one at a time; requests during a reload make one more."""
        while True:
            await self.reload_requested.wait()
            self.reload_requested.clear()
            self.reloaded.clear()
            try:
                self.last_reload = await self.reload()
            except Exception:  # a reload must never take the running agent down
                self.last_reload = None
                log.exception("reload #%d failed; the agent runs on", self.reloads_tried)
            finally:
                self.reloaded.set()

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
        self.commands.restore(self.clock.now())
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
            self._group = group
            serving = group.create_task(server.serve(), name="metrics") if server else None
            for polling in self._polling.values():
                self._start(polling)
            summarising = group.create_task(self.summariser.run(), name="summariser")
            self.clock.track(summarising)
            control = None
            if self.controller is not None:
                control = group.create_task(self.controller.run(), name="control")
                self.clock.track(control)
            publisher = (
                group.create_task(self.publisher.run(), name="publisher") if self.publish else None
            )
            # Logged only on real time: a simulated day keeps the loop busy on purpose.
            lag = LoopLag(warn_s=0.1 if isinstance(self.clock, SystemClock) else None)
            self.metrics.loop_lag = lag
            ticking = group.create_task(lag.run(), name="loop lag")
            reloads = group.create_task(self._reloads(), name="reload")
            self.started.set()
            await stop.wait()
            log.info(
                "stopping: %s waiting in the outbox",
                count(self.outbox.depth(), "summary", "summaries"),
            )
            reloads.cancel()
            await asyncio.wait([reloads])
            if control is not None:
                # Before the drivers close: the loads go back to their safe state first.
                control.cancel()
                await asyncio.wait([control])
            # An interval that has ended is summarised before the agent goes (a graceful
            # stop in its settle time would otherwise leave it to no process).
            self.summariser.stop()
            await asyncio.wait([summarising])
            for task in [p.task for p in self._polling.values() if p.task]:
                task.cancel()
            if publisher is not None:
                await self._drain(publisher)
            if serving is not None:
                serving.cancel()
            ticking.cancel()
        self._group = None

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
