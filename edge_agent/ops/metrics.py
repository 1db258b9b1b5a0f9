"""The agent's figures, gathered at each scrape: per device, per line, outbox, broker, process.

`AgentMetrics` reads the statistics the pollers, the outbox and the publisher keep anyway;
it keeps only what nobody else does: the count of actions by kind, which the optimiser
reports through `action()`.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from edge_agent import __version__
from edge_agent.clock import Clock
from edge_agent.config.schema import SiteConfig
from edge_agent.northbound.mqtt import PublishStats
from edge_agent.northbound.outbox import Outbox
from edge_agent.polling import ERROR_KINDS, PollerStats

from .exposition import Family, render
from .health import DeviceHealth, Health, assess
from .labels import DeviceWhere, where_devices_are
from .loop_lag import LoopLag

__all__ = ["AgentMetrics", "LineStats", "process_figures"]


@dataclass(frozen=True, slots=True)
class LineStats:
    """One poller: its driver's name and the statistics it keeps."""

    line: str
    stats: PollerStats


def process_figures() -> tuple[int, float]:
    """(resident memory in bytes, CPU seconds user + system) of this process.

    RSS from /proc/self/statm where there is one (Linux: every gateway), else the peak RSS
    `getrusage` reports, which is the best a portable call gives."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = usage.ru_utime + usage.ru_stime
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE"), cpu_s
    except (OSError, ValueError, IndexError):
        return usage.ru_maxrss * 1024, cpu_s


class AgentMetrics:
    def __init__(
        self,
        config: SiteConfig,
        clock: Clock,
        lines: Sequence[LineStats],
        outbox: Outbox,
        publisher: PublishStats | None,
    ) -> None:
        """`publisher` None: the agent runs without a broker."""
        self._config = config
        self._clock = clock
        self._lines = list(lines)
        self._outbox = outbox
        self._publisher = publisher
        self._where = where_devices_are(config)
        self._actions: dict[tuple[str, str], int] = {}
        self.started: datetime = clock.now()
        """When the agent started polling; a device never read is counted silent from here."""
        self.loop_lag: LoopLag | None = None
        """The event loop's lag, once the agent runs its ticker."""

    def follow(self, config: SiteConfig, lines: Sequence[LineStats]) -> None:
        """The pollers after a reload: scrapes show the new device set from now on."""
        self._config = config
        self._lines = list(lines)
        self._where = where_devices_are(config)

    def action(self, kind: str, *, load: str = "") -> None:
        """Count one action the agent took (`shed`, `restore`, `setpoint`...) on `load`."""
        key = (kind, load)
        self._actions[key] = self._actions.get(key, 0) + 1

    def actions(self) -> dict[tuple[str, str], int]:
        """(kind, load) -> count, for reports and tests."""
        return dict(self._actions)

    # -- /health ------------------------------------------------------------------------

    def health(self) -> Health:
        devices = []
        for line in self._lines:
            for name, stats in line.stats.devices.items():
                where = self._where.get(name)
                devices.append(
                    DeviceHealth(
                        name=name,
                        where=_describe(where) if where else line.line,
                        poll_interval_s=where.poll_interval_s if where else 1.0,
                        last_success=stats.last_success,
                        degraded=stats.degraded,
                        connected=line.stats.connected,
                        last_error=stats.last_error,
                        last_good=stats.last_good,
                        tracks_good=True,
                    )
                )
        publisher = self._publisher
        return assess(
            devices,
            now=self._clock.now(),
            started=self.started,
            failing_after_intervals=self._config.metrics.failing_after_intervals,
            outbox_depth=self._outbox.depth(),
            outbox_cap=self._config.outbox.max_messages,
            broker_connected=None if publisher is None else publisher.connected,
            broker_error=None if publisher is None else publisher.last_error,
        )

    # -- /metrics -----------------------------------------------------------------------

    def render(self) -> str:
        site = {"site": self._config.site.name}
        families = [
            *self._agent_families(site),
            *self._loop_families(site),
            *self._device_families(site),
            *self._line_families(site),
            *self._northbound_families(site),
            *self._process_families(),
        ]
        return render(families)

    def _loop_families(self, site: dict[str, str]) -> list[Family]:
        if self.loop_lag is None:
            return []
        lag = Family(
            "edge_agent_event_loop_lag_seconds",
            "histogram",
            "How late the event loop woke a ticker due every 0.25 s: what a blocking step costs "
            "every poll and control cycle.",
        )
        histogram = self.loop_lag.histogram
        for bound, n in histogram.cumulative():
            lag.add({**site, "le": _le(bound)}, n, suffix="_bucket")
        lag.add(site, histogram.total, suffix="_sum")
        lag.add(site, histogram.count, suffix="_count")
        return [lag]

    def _agent_families(self, site: dict[str, str]) -> list[Family]:
        info = Family("edge_agent_info", "gauge", "The agent's version and site; always 1.")
        info.add({**site, "park": self._config.site.park, "version": __version__}, 1)
        start = Family("edge_agent_start_time_seconds", "gauge", "Unix time the agent started.")
        start.add(site, self.started.timestamp())
        actions = Family(
            "edge_agent_actions_total", "counter", "Actions the agent took, by kind and load."
        )
        for (kind, load), n in sorted(self._actions.items()):
            actions.add({**site, "kind": kind, "load": load}, n)
        health = Family(
            "edge_agent_health_status",
            "gauge",
            "1 for the current /health status (ready, degraded, failing), 0 for the others.",
        )
        status = self.health().status
        for name in ("ready", "degraded", "failing"):
            health.add({**site, "status": name}, 1 if name == status else 0)
        return [info, start, actions, health]

    def _device_families(self, site: dict[str, str]) -> list[Family]:
        polls = Family(
            "edge_agent_device_polls_total", "counter", "Poll group reads the device answered."
        )
        errors = Family(
            "edge_agent_device_errors_total",
            "counter",
            "Device faults by kind: timeout (no answer), disconnect (line or session lost, or "
            "refused), exception (a Modbus exception reply), garbage (an undecodable answer), "
            "config (the device does not match the site file).",
        )
        overruns = Family(
            "edge_agent_device_overruns_total",
            "counter",
            "Poll ticks skipped because the line was still busy with earlier polls.",
        )
        last = Family(
            "edge_agent_device_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last answered poll; absent until the first.",
        )
        degraded = Family(
            "edge_agent_device_degraded",
            "gauge",
            "1 while the device misses polls in a row and is polled only at backoff intervals.",
        )
        rtt = Family(
            "edge_agent_device_round_trip_seconds",
            "histogram",
            "Time of each answered poll group read, request to last reply.",
        )
        for line in self._lines:
            for name, stats in line.stats.devices.items():
                where = self._where.get(name)
                labels = {
                    **site,
                    **(where.metric_labels() if where else {"device": name, "line": line.line}),
                }
                polls.add(labels, stats.polls)
                for kind in ERROR_KINDS:
                    errors.add({**labels, "kind": kind}, stats.errors_by_kind.get(kind, 0))
                overruns.add(labels, stats.overruns)
                if stats.last_success is not None:
                    last.add(labels, stats.last_success.timestamp())
                degraded.add(labels, int(stats.degraded))
                histogram = stats.round_trip_s
                for bound, n in histogram.cumulative():
                    rtt.add({**labels, "le": _le(bound)}, n, suffix="_bucket")
                rtt.add(labels, histogram.total, suffix="_sum")
                rtt.add(labels, histogram.count, suffix="_count")
        return [polls, errors, overruns, last, degraded, rtt]

    def _line_families(self, site: dict[str, str]) -> list[Family]:
        connected = Family(
            "edge_agent_line_connected", "gauge", "1 while the line or session is connected."
        )
        failures = Family(
            "edge_agent_line_connection_failures_total",
            "counter",
            "Connections lost or refused on the line or session.",
        )
        for line in self._lines:
            labels = {**site, "line": line.line}
            connected.add(labels, int(line.stats.connected))
            failures.add(labels, line.stats.connection_failures)
        return [connected, failures]

    def _northbound_families(self, site: dict[str, str]) -> list[Family]:
        depth = Family(
            "edge_agent_outbox_depth", "gauge", "Summaries waiting in the outbox for the broker."
        )
        depth.add(site, self._outbox.depth())
        cap = Family(
            "edge_agent_outbox_capacity",
            "gauge",
            "The outbox's cap; past it the oldest summaries are dropped.",
        )
        cap.add(site, self._config.outbox.max_messages)
        age = Family(
            "edge_agent_outbox_oldest_age_seconds",
            "gauge",
            "Age of the oldest summary waiting; 0 when the outbox is empty.",
        )
        oldest = self._outbox.oldest_created()
        now = self._clock.now().timestamp()  # the outbox stamps on the agent's clock
        age.add(site, 0.0 if oldest is None else max(0.0, now - oldest))
        families = [depth, cap, age]
        stats = self._publisher
        if stats is None:
            return families
        broker = {**site, "broker": f"{self._config.broker.host}:{self._config.broker.port}"}
        connected = Family(
            "edge_agent_broker_connected", "gauge", "1 while connected to the park's broker."
        )
        connected.add(broker, int(stats.connected))
        published = Family(
            "edge_agent_broker_published_total",
            "counter",
            "Messages the broker acknowledged (QoS 1).",
        )
        published.add(broker, stats.published)
        connects = Family(
            "edge_agent_broker_connects_total", "counter", "Connections made to the broker."
        )
        connects.add(broker, stats.connects)
        failures = Family(
            "edge_agent_broker_connection_failures_total",
            "counter",
            "Connections to the broker refused or lost.",
        )
        failures.add(broker, stats.failures)
        return [*families, connected, published, connects, failures]

    def _process_families(self) -> list[Family]:
        rss, cpu_s = process_figures()
        memory = Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        memory.add({}, rss)
        cpu = Family(
            "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds."
        )
        cpu.add({}, cpu_s)
        return [memory, cpu]


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _describe(where: DeviceWhere) -> str:
    if where.unit is None:
        return where.address
    return f"unit {where.unit} on {where.line}, {where.address}"
