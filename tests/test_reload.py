"""Hot reload: SIGHUP applies only what changed in the devices; an invalid file changes nothing.

Real Modbus simulators on free loopback ports; the agent runs in-process under the
supervisor's signal handling, so `os.kill(os.getpid(), SIGHUP)` takes the path a gateway's
`systemctl reload` takes. One test runs `edge-agent run` and `edge-agent reload` as processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_modbus_model, load_site
from edge_agent.config.schema import SiteConfig
from edge_agent.model import Quality, Reading
from edge_agent.northbound.outbox import MemoryOutbox
from edge_agent.reload import plan_reload, with_devices
from edge_agent.supervisor import run_until_signalled
from simulators.meter import MeterModel
from simulators.modbus_server import ModbusSimulator, SimulatedUnit

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="reload is by SIGHUP")

SITE = """
site: {{name: press-shop, park: test-park}}
summary: {{interval_s: 60, settle_s: 1}}
devices:
  - {{name: steady, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1, port: {a}}}
  - {{name: changing, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1, port: {b},
     poll_interval_s: {interval}}}
"""


@contextlib.asynccontextmanager
async def meters(clock: SimClock, *units: int) -> AsyncIterator[ModbusSimulator]:
    points = load_modbus_model("eastron-sdm630").points
    simulated = [SimulatedUnit(u, points, MeterModel(clock, seed=u).values) for u in units]
    async with ModbusSimulator(simulated) as server:
        yield server


@contextlib.asynccontextmanager
async def supervised(agent: Agent) -> AsyncIterator[None]:
    """The agent under the supervisor's signal handling, as `edge-agent run` runs it; left
    by SIGTERM, as systemd stops it."""
    async with asyncio.TaskGroup() as group:
        group.create_task(run_until_signalled(agent.run, reload=agent.reload_requested))
        await agent.started.wait()
        yield
        os.kill(os.getpid(), signal.SIGTERM)
    assert agent.stopped.is_set()


async def hangup(agent: Agent) -> None:
    """SIGHUP to this process, and wait until the agent has dealt with it."""
    agent.reloaded.clear()
    os.kill(os.getpid(), signal.SIGHUP)
    async with asyncio.timeout(20):
        await agent.reloaded.wait()


def good_times(agent: Agent, point: str) -> list[datetime]:
    """Every instant `point` was read GOOD from now on."""
    times: list[datetime] = []

    def listen(readings: list[Reading]) -> None:
        times.extend(r.at for r in readings if r.point == point and r.quality is Quality.GOOD)

    agent.image.subscribe(listen)
    return times


def polls_scraped(agent: Agent, device: str) -> float:
    """The device's poll counter as `/metrics` shows it now."""
    [line] = [
        line
        for line in agent.metrics.render().splitlines()
        if line.startswith("edge_agent_device_polls_total{") and f'device="{device}"' in line
    ]
    return float(line.rsplit(" ", 1)[1])


async def test_sighup_restarts_only_the_changed_device_and_an_invalid_file_changes_nothing(
    tmp_path: Path, clock: SimClock, caplog: pytest.LogCaptureFixture
) -> None:
    site = tmp_path / "site.yaml"
    async with meters(clock, 1) as a, meters(clock, 1) as b:
        site.write_text(SITE.format(a=a.port, b=b.port, interval=1))
        agent = Agent(load_site(site), clock, outbox=MemoryOutbox(), publish=False, site_file=site)
        steady_times = good_times(agent, "steady/total_power_kw")
        changing_times = good_times(agent, "changing/total_power_kw")
        async with supervised(agent):
            steady, changing = agent.pollers
            [steady_task] = [
                t for t in asyncio.all_tasks() if t.get_name() == f"poll tcp-127-0-0-1-{a.port}"
            ]
            await clock.advance(10)
            assert a.connections() == b.connections() == 1

            site.write_text(SITE.format(a=a.port, b=b.port, interval=2))
            await hangup(agent)
            plan = agent.last_reload
            assert plan is not None
            assert (plan.changed, plan.added, plan.removed) == (["changing"], [], [])
            assert [name for _, name in plan.restart] == [f"tcp-127-0-0-1-{b.port}"]
            assert [name for _, name in plan.keep] == [f"tcp-127-0-0-1-{a.port}"]
            await clock.advance(10)

            # The unchanged meter's poller was never touched: same object, same task, same
            # connection, and a reading every second across the reload.
            assert agent.pollers[0] is steady
            assert not steady_task.done()
            assert a.connections() == 1
            assert steady.stats.connection_failures == 0
            assert steady.stats.devices["steady"].polls == 21  # every tick from 0 to 20 s
            assert steady.stats.devices["steady"].overruns == 0
            gaps = {b - a for a, b in itertools.pairwise(steady_times)}
            assert gaps == {timedelta(seconds=1)}
            # The changed meter runs a new poller, every 2 s, on a new connection.
            renewed = agent.pollers[1]
            assert renewed is not changing
            assert renewed.stats.devices["changing"].polls == 6  # 10, 12, ... 20 s
            after = [t for t in changing_times if t > clock.now() - timedelta(seconds=10)]
            assert {b - a for a, b in itertools.pairwise(after)} == {timedelta(seconds=2)}
            assert b.connections() == 1
            assert polls_scraped(agent, "changing") == 6

            # An invalid file: every problem logged where it is, nothing changes.
            caplog.clear()
            site.write_text(
                SITE.format(a=a.port, b=b.port, interval="fast").replace("steady", "steady-1", 1)
            )
            before = list(agent.pollers)
            with caplog.at_level(logging.ERROR, logger="edge_agent"):
                await hangup(agent)
            assert agent.last_reload is None
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            assert any(
                f"{site}:7:" in e and "devices[changing].poll_interval_s" in e for e in errors
            )
            assert errors[-1].endswith("kept the running configuration")
            assert agent.pollers == before
            assert [d.name for d in agent.config.devices] == ["steady", "changing"]
            await clock.advance(4)
            assert steady.stats.devices["steady"].polls == 25
            assert renewed.stats.devices["changing"].polls == 8
            assert a.connections() == b.connections() == 1


SHARED = """
site: {{name: press-shop, park: test-park}}
summary: {{interval_s: 60, settle_s: 1}}
modbus_lines:
  - {{name: bus, transport: tcp, host: 127.0.0.1, port: {bus}}}
devices:
  - {{name: m1, driver: modbus, line: bus, unit: 1, model: eastron-sdm630}}
{second}
  - {{name: solo, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1, port: {solo}}}
"""


async def test_a_change_on_a_shared_line_restarts_that_line_and_removed_devices_leave(
    tmp_path: Path, clock: SimClock
) -> None:
    site = tmp_path / "site.yaml"
    outbox = MemoryOutbox()
    async with meters(clock, 1, 2) as bus, meters(clock, 1) as solo, meters(clock, 1) as extra:
        m2 = "  - {name: m2, driver: modbus, line: bus, unit: 2, model: eastron-sdm630}"
        site.write_text(SHARED.format(bus=bus.port, solo=solo.port, second=m2))
        agent = Agent(load_site(site), clock, outbox=outbox, publish=False, site_file=site)
        async with supervised(agent):
            line, kept = agent.pollers
            await clock.advance(5)

            # m2 moves to 5 s: the bus restarts (both its units), the other line does not.
            site.write_text(
                SHARED.format(
                    bus=bus.port, solo=solo.port, second=m2.replace("}", ", poll_interval_s: 5}")
                )
            )
            await hangup(agent)
            assert agent.last_reload is not None
            assert agent.last_reload.restart == [("modbus", "bus")]
            assert agent.pollers[1] is kept
            assert agent.pollers[0] is not line
            await clock.advance(5)
            # Polled on its new 5 s grid (which the line shifts by a phase: at 7.5 s).
            assert agent.pollers[0].stats.devices["m2"].polls == 1

            # m2 goes, `extra` arrives on a line of its own.
            added = (
                f"  - {{name: extra, driver: modbus-tcp, model: eastron-sdm630, "
                f"host: 127.0.0.1, port: {extra.port}}}"
            )
            site.write_text(SHARED.format(bus=bus.port, solo=solo.port, second=added))
            await hangup(agent)
            plan = agent.last_reload
            assert plan is not None
            assert (plan.added, plan.removed) == (["extra"], ["m2"])
            assert [name for _, name in plan.start] == [f"tcp-127-0-0-1-{extra.port}"]
            assert agent.pollers[2] is kept  # in the file's order: bus, extra, solo
            assert agent.image.get("m2/total_power_kw", clock.now()) is None
            await clock.advance(60 - 10 + 1)  # the 08:00-08:01 summaries are stored at 08:01:01
            metrics = agent.metrics.render()
            assert 'device="m2"' not in metrics
            assert 'device="extra"' in metrics
            good = agent.image.get("extra/total_power_kw", clock.now())
            assert good is not None
            assert good.quality is Quality.GOOD
            topics = [m.topic.rsplit("/", 2)[1] for m in await outbox.take(100)]
            assert sorted(topics) == ["extra", "m1", "solo"]


POWER = {"power_kw": {"address": 0, "role": "active_power_kw", "unit": "kW"}}


def config(**sections: object) -> SiteConfig:
    base: dict[str, object] = {
        "site": {"name": "press-shop", "park": "test-park"},
        "devices": [
            {"name": "meter", "driver": "modbus-tcp", "host": "10.0.0.5", "points": POWER},
            {
                "name": "oven",
                "driver": "opcua",
                "endpoint": "opc.tcp://10.0.0.9:4840",
                "points": {"power_kw": {"node_id": "ns=2;s=power"}},
            },
        ],
    }
    return SiteConfig.model_validate({**base, **sections})


def test_sections_other_than_devices_are_reported_as_needing_a_restart() -> None:
    running = config()
    plan = plan_reload(running, config(broker={"host": "10.0.0.1"}, summary={"interval_s": 30}))
    assert plan.needs_restart == ["broker", "summary"]
    assert not plan.touches_devices
    assert "no device changed" in plan.describe()


def test_an_opc_ua_device_is_a_unit_of_its_own() -> None:
    running = config()
    moved = running.model_dump()
    moved["devices"][1]["endpoint"] = "opc.tcp://10.0.0.10:4840"
    plan = plan_reload(running, SiteConfig.model_validate(moved))
    assert plan.restart == [("opcua", "oven")]
    assert plan.keep == [("modbus", "tcp-10-0-0-5-502")]


def test_devices_the_running_control_needs_cannot_be_reloaded_away() -> None:
    devices: list[dict[str, object]] = [
        {"name": "meter", "driver": "modbus-tcp", "host": "10.0.0.5", "points": POWER}
    ]
    running = config(devices=devices, control={"meter": "meter", "limit_kw": 500})
    other = config(devices=[{**devices[0], "name": "incomer"}])
    with pytest.raises(
        ValueError, match=r"control\.meter: no device named 'meter' under devices \(incomer\)"
    ):
        with_devices(running, other)


async def test_edge_agent_reload_signals_the_running_agent(tmp_path: Path) -> None:
    """`edge-agent run`, then `edge-agent reload`: real processes, real time, real signals."""
    clock = SimClock()  # the simulated meters' values only; the agent runs on its own clock
    site = tmp_path / "site.yaml"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    async def edge_agent(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge_agent", *args, env=env, stdout=-1, stderr=-1
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async with meters(clock, 1) as a, meters(clock, 1) as b:
        site.write_text(SITE.format(a=a.port, b=b.port, interval=1))
        agent = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge_agent", "run", str(site), "--no-publish",
            env=env, stderr=-1,
        )  # fmt: skip
        assert agent.stderr is not None
        log: list[str] = []

        async def logged(text: str) -> None:
            assert agent.stderr is not None
            async with asyncio.timeout(20):
                while not any(text in line for line in log):
                    line = (await agent.stderr.readline()).decode()
                    assert line, f"the agent exited; it logged:\n{''.join(log)}"
                    log.append(line)

        try:
            await logged("summaries every 60 s")
            pid_file = tmp_path / "state" / "edge-agent.pid"
            assert pid_file.read_text().strip() == str(agent.pid)

            site.write_text(SITE.format(a=a.port, b=b.port, interval=2))
            code, out, _ = await edge_agent("reload", str(site))
            assert code == 0
            assert f"sent SIGHUP to edge-agent pid {agent.pid}" in out
            await logged("reload: changed changing;")
            assert any(f"restarting line tcp-127-0-0-1-{b.port}" in line for line in log)

            # `reload FILE` checks first: an invalid file is not even sent.
            site.write_text(SITE.format(a=a.port, b=b.port, interval="fast"))
            code, _, err = await edge_agent("reload", str(site))
            assert code == 2
            assert "devices[changing].poll_interval_s" in err
            assert "not signalled" in err
            # Sent anyway (by pid file), the agent refuses it and says why.
            code, _, _ = await edge_agent("reload", "--pid-file", str(pid_file))
            assert code == 0
            await logged("kept the running configuration")
            assert any("devices[changing].poll_interval_s" in line for line in log)
        finally:
            if agent.returncode is None:
                agent.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await agent.stderr.read()
            assert await agent.wait() == 0
        assert not pid_file.exists()
