"""`/metrics` and `/health` over real HTTP, on an agent polling a live meter and a dead one."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_modbus_model, load_site
from edge_agent.northbound.outbox import MemoryOutbox
from edge_agent.ops.exposition import Family, escape_label_value, render
from edge_agent.ops.health import DeviceHealth, Health, assess
from edge_agent.ops.histogram import Histogram
from edge_agent.ops.http import OpsServer
from simulators.faults import Fault
from simulators.meter import MeterModel
from simulators.modbus_server import ModbusSimulator, SimulatedUnit
from simulators.ports import free_port
from tests.conftest import START

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def http_get(port: int, path: str) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of one GET on the loopback."""
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read()
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.decode().partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def parse(text: str) -> Samples:
    samples: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        pairs = frozenset(_LABEL.findall(labels or ""))
        samples[(name, pairs)] = float(value)
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample of `name` whose labels include `labels`."""
    found = [v for (n, pairs), v in samples.items() if n == name and set(labels.items()) <= pairs]
    assert len(found) == 1, (name, labels, found)
    return found[0]


async def test_metrics_and_health_name_the_dead_device(tmp_path: Path, clock: SimClock) -> None:
    points = load_modbus_model("eastron-sdm630").points
    meter = MeterModel(clock, seed=1)
    dead_port, http_port = free_port(), free_port()
    site = tmp_path / "site.yaml"
    async with ModbusSimulator([SimulatedUnit(1, points, meter.values)]) as live:
        site.write_text(f"""
site: {{name: press-shop, park: test-park}}
metrics: {{port: {http_port}}}
devices:
  - {{name: live, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1, port: {live.port},
     timeout_s: 0.2}}
  - {{name: dead, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1, port: {dead_port},
     unit: 7, timeout_s: 0.2, reconnect_initial_s: 1, reconnect_max_s: 4}}
""")
        agent = Agent(load_site(site), clock, outbox=MemoryOutbox(), publish=False)
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(agent.run(stop))
            await agent.started.wait()
            assert agent.ops_server is not None
            assert agent.ops_server.port == http_port

            await clock.advance(20)
            status, headers, body = await http_get(http_port, "/metrics")
            assert status == 200
            assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
            first = parse(body)
            await clock.advance(20)
            second = parse((await http_get(http_port, "/metrics"))[2])

            polls = "edge_agent_device_polls_total"
            errors = "edge_agent_device_errors_total"
            live_labels = {"site": "press-shop", "device": "live", "unit": "1"}
            dead_labels = {"site": "press-shop", "device": "dead", "unit": "7"}
            assert value(second, polls, **live_labels) > value(first, polls, **live_labels) > 0
            assert value(second, polls, **dead_labels) == 0
            dead_kind = {**dead_labels, "kind": "disconnect"}
            assert value(second, errors, **dead_kind) > value(first, errors, **dead_kind) > 0
            assert value(second, errors, **live_labels, kind="timeout") == 0
            assert (
                value(second, "edge_agent_line_connected", line=f"tcp-127-0-0-1-{dead_port}") == 0
            )
            _check_figures(second, clock)

            status, headers, body = await http_get(http_port, "/health")
            health = json.loads(body)
            assert status == 200
            assert headers["Content-Type"] == "application/json"
            assert health["status"] == "degraded"
            assert len(health["reasons"]) == 1
            assert "device dead (unit 7 on " in health["reasons"][0]
            assert "cannot connect" in health["reasons"][0]

            agent.metrics.action("shed", load="chiller-2")
            agent.metrics.action("shed", load="chiller-2")
            third = parse((await http_get(http_port, "/metrics"))[2])
            assert value(third, "edge_agent_actions_total", kind="shed", load="chiller-2") == 2

            assert (await http_get(http_port, "/nothing"))[0] == 404
            stop.set()
    with pytest.raises(ConnectionRefusedError):  # the endpoint closed with the agent
        await asyncio.open_connection("127.0.0.1", http_port)


def _check_figures(second: Samples, clock: SimClock) -> None:
    """The live meter's timestamps and round trips, the outbox, the process, the verdict."""

    polls = "edge_agent_device_polls_total"
    last = value(second, "edge_agent_device_last_success_timestamp_seconds", device="live")
    assert last == pytest.approx((clock.now()).timestamp(), abs=1.0)
    answered = value(second, "edge_agent_device_round_trip_seconds_count", device="live")
    assert answered == value(second, polls, device="live")
    inf = value(second, "edge_agent_device_round_trip_seconds_bucket", device="live", le="+Inf")
    assert inf == answered
    assert value(second, "edge_agent_outbox_depth") >= 0
    lag = "edge_agent_event_loop_lag_seconds"
    assert value(second, f"{lag}_bucket", le="+Inf") == value(second, f"{lag}_count")
    assert value(second, "process_resident_memory_bytes") > 10_000_000
    assert value(second, "process_cpu_seconds_total") > 0
    assert value(second, "edge_agent_health_status", status="degraded") == 1


def test_label_values_are_escaped() -> None:
    family = Family("edge_agent_x", "gauge", "Help with a \\ and a\nline feed.")
    family.add({"device": 'meter "A"\\2\nB'}, 1.5)
    text = render([family])
    assert text == (
        "# HELP edge_agent_x Help with a \\\\ and a\\nline feed.\n"
        "# TYPE edge_agent_x gauge\n"
        'edge_agent_x{device="meter \\"A\\"\\\\2\\nB"} 1.5\n'
    )
    assert escape_label_value("plain") == "plain"
    assert parse(text)[("edge_agent_x", frozenset({("device", 'meter \\"A\\"\\\\2\\nB')}))] == 1.5


def test_histogram_buckets_are_cumulative() -> None:
    histogram = Histogram((0.01, 0.1))
    for seconds in (0.005, 0.01, 0.05, 3.0):
        histogram.observe(seconds)
    assert histogram.cumulative() == [(0.01, 2), (0.1, 3), (float("inf"), 4)]
    assert histogram.count == 4
    assert histogram.total == pytest.approx(3.065)


def _device(
    name: str,
    *,
    read_ago_s: float | None,
    degraded: bool = False,
    connected: bool = True,
    last_error: str | None = None,
    last_good: datetime | None = None,
    tracks_good: bool = False,
) -> DeviceHealth:
    return DeviceHealth(
        name,
        where=f"unit 1 on line-a, 10.0.0.5:502 ({name})",
        poll_interval_s=1.0,
        last_success=None if read_ago_s is None else START - timedelta(seconds=read_ago_s),
        degraded=degraded,
        connected=connected,
        last_error=last_error,
        last_good=last_good,
        tracks_good=tracks_good,
    )


@pytest.mark.parametrize(
    ("devices", "depth", "broker", "status", "mentions"),
    [
        ([_device("a", read_ago_s=0.5)], 0, True, "ready", []),
        ([_device("a", read_ago_s=0.5)], 0, None, "ready", []),
        ([_device("a", read_ago_s=0.5)], 0, False, "degraded", ["broker is disconnected"]),
        (
            [_device("a", read_ago_s=0.5), _device("b", read_ago_s=30, degraded=True)],
            0,
            True,
            "degraded",
            ["device b", "degraded"],
        ),
        ([_device("a", read_ago_s=0.5)], 95, True, "failing", ["outbox holds 95 of at most 100"]),
        (  # answers every poll, but with an exception for every point: measuring nothing
            [
                _device(
                    "a",
                    read_ago_s=0.5,
                    tracks_good=True,
                    last_error="Modbus exception 02 (illegal data address)",
                )
            ],
            0,
            True,
            "degraded",
            ["device a", "answers but has no good value yet", "exception 02"],
        ),
        (
            [_device("a", read_ago_s=0.5, tracks_good=True, last_good=START)],
            0,
            True,
            "ready",
            [],
        ),
        (
            [
                _device("a", read_ago_s=30),
                _device("b", read_ago_s=None, connected=False, last_error="cannot connect"),
            ],
            0,
            True,
            "failing",
            ["no device has been read for 5 poll intervals (a, b)", "device b", "cannot connect"],
        ),
    ],
)
def test_health_rules(
    devices: list[DeviceHealth], depth: int, broker: bool | None, status: str, mentions: list[str]
) -> None:
    health = assess(
        devices,
        now=START,
        started=START - timedelta(seconds=60),
        failing_after_intervals=5,
        outbox_depth=depth,
        outbox_cap=100,
        broker_connected=broker,
    )
    assert health.status == status
    assert health.http_status == (503 if status == "failing" else 200)
    text = " | ".join(health.reasons)
    for words in mentions:
        assert words in text
    assert bool(health.reasons) == (status != "ready")


async def test_failing_health_is_a_503_and_bad_requests_are_answered() -> None:
    server = OpsServer(
        host="127.0.0.1",
        port=0,
        metrics=lambda: "",
        health=lambda: Health("failing", ["no device has been read"]),
    )
    await server.start()
    serving = asyncio.create_task(server.serve())
    try:
        status, _, body = await http_get(server.port, "/health")
        assert status == 503
        assert json.loads(body) == {"status": "failing", "reasons": ["no device has been read"]}
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"nonsense\r\n\r\n")
            assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
            writer.close()
            await writer.wait_closed()
    finally:
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.exception(4), "exception"),
        (Fault.no_answer(), "timeout"),
        (Fault.corrupt(), "garbage"),
    ],
)
async def test_faults_are_counted_by_kind(
    tmp_path: Path, clock: SimClock, fault: Fault, kind: str
) -> None:
    points = load_modbus_model("eastron-sdm630").points
    meter = MeterModel(clock, seed=4)
    unit = SimulatedUnit(1, points, meter.values)
    site = tmp_path / "site.yaml"
    async with ModbusSimulator([unit]) as server:
        site.write_text(f"""
site: {{name: press-shop, park: test-park}}
devices:
  - {{name: m, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1, port: {server.port},
     timeout_s: 0.2}}
""")
        agent = Agent(load_site(site), clock, outbox=MemoryOutbox(), publish=False)
        [poller] = agent.pollers
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(agent.run(stop))
            await agent.started.wait()
            await clock.advance(3)
            stats = poller.stats.devices["m"]
            assert stats.errors_by_kind == {}
            unit.fault = fault
            await clock.advance(3)
            unit.fault = None
            stop.set()
    assert stats.errors_by_kind.get(kind, 0) >= 1, stats.errors_by_kind
    # A unit that answers nothing usable several times in a row also gets its line reconnected.
    assert set(stats.errors_by_kind) - {"disconnect"} == {kind}
