"""The OPC UA driver against the machine simulator (a real asyncua server) on a free port."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from asyncua import Client

from drivers.base import DeviceUnavailable, WriteRefused
from drivers.opcua.config import OpcUaDevice
from drivers.opcua.driver import OpcUaDriver
from drivers.opcua.session import UntrustedServer
from edge_agent.agent import Agent
from edge_agent.clock import SimClock, SystemClock
from edge_agent.config.loader import load_opcua_model, load_site
from edge_agent.model import Quality, Reading
from simulators.broker import MosquittoBroker
from simulators.machines import Chiller, Furnace
from simulators.opcua_server import OpcUaSimulator, SimulatedMachine
from simulators.ports import free_port
from tests.conftest import START


@pytest.fixture
def furnace() -> Furnace:
    return Furnace()


@pytest.fixture
async def machines(
    tmp_path: Path, clock: SimClock, furnace: Furnace
) -> AsyncIterator[OpcUaSimulator]:
    simulated = [
        SimulatedMachine(load_opcua_model("electric-furnace"), furnace),
        SimulatedMachine(load_opcua_model("process-chiller"), Chiller()),
    ]
    async with OpcUaSimulator(
        simulated, clock=clock, port=free_port(), pki=tmp_path / "server"
    ) as server:
        yield server


def furnace_device(
    server: OpcUaSimulator,
    tmp_path: Path,
    *,
    policy: str = "None",
    mode: str = "None",
    trust: bool = True,
    **extra: object,
) -> OpcUaDevice:
    trusted = tmp_path / "pki" / "trusted"
    trusted.mkdir(parents=True, exist_ok=True)
    if trust:
        (trusted / "machine.der").write_bytes(server.certificate.read_bytes())
    model = load_opcua_model("electric-furnace")
    security = model.security.model_copy(
        update={
            "policy": policy,
            "mode": mode,
            "trusted": trusted,
            "rejected": tmp_path / "pki" / "rejected",
            "certificate": tmp_path / "pki" / "own" / "agent.der",
            "private_key": tmp_path / "pki" / "own" / "agent-key.pem",
        }
    )
    return model.model_copy(
        update={"name": "furnace", "endpoint": server.url, "security": security, **extra}
    )


async def read_all(driver: OpcUaDriver, clock: SimClock) -> dict[str, Reading]:
    readings = {}
    for group in driver.poll_groups():
        readings.update({r.point.split("/")[1]: r for r in await driver.read(group, clock.now())})
    return readings


@pytest.mark.parametrize(
    ("policy", "mode"),
    [
        ("None", "None"),
        ("Basic256Sha256", "Sign"),
        ("Basic256Sha256", "SignAndEncrypt"),
        ("Aes128Sha256RsaOaep", "SignAndEncrypt"),
        ("Aes256Sha256RsaPss", "SignAndEncrypt"),
    ],
)
async def test_every_security_mode_reads_the_machine(
    machines: OpcUaSimulator,
    tmp_path: Path,
    clock: SimClock,
    policy: str,
    mode: str,
) -> None:
    device = furnace_device(machines, tmp_path, policy=policy, mode=mode)
    async with OpcUaDriver(device, clock) as driver:
        readings = await read_all(driver, clock)
    assert all(r.quality is Quality.GOOD for r in readings.values()), readings
    assert readings["setpoint_c"].value == 850.0
    assert readings["enable"].value is True
    if policy != "None":  # the agent's certificate and key were made on first use
        assert device.security.certificate.is_file()
        assert device.security.private_key.is_file()


async def test_an_untrusted_server_is_refused_with_what_to_do(
    machines: OpcUaSimulator, tmp_path: Path, clock: SimClock
) -> None:
    device = furnace_device(
        machines, tmp_path, policy="Basic256Sha256", mode="SignAndEncrypt", trust=False
    )
    with pytest.raises(UntrustedServer) as refused:
        async with OpcUaDriver(device, clock):
            pass
    message = str(refused.value)
    assert "is not trusted" in message
    assert "SHA-1" in message
    [rejected] = list(device.security.rejected.glob("*.der"))
    assert f"move {rejected} to {device.security.trusted}" in message
    # Doing what the message says is enough: the next attempt connects.
    rejected.rename(device.security.trusted / rejected.name)
    async with OpcUaDriver(device, clock) as driver:
        assert (await read_all(driver, clock))["enable"].value is True


async def test_trust_on_first_use_pins_the_first_certificate(
    machines: OpcUaSimulator, tmp_path: Path, clock: SimClock
) -> None:
    device = furnace_device(machines, tmp_path, policy="Basic256Sha256", mode="Sign", trust=False)
    security = device.security.model_copy(update={"trust_on_first_use": True})
    async with OpcUaDriver(device.model_copy(update={"security": security}), clock) as driver:
        assert (await read_all(driver, clock))["state"].quality is Quality.GOOD
    assert len(list(security.trusted.glob("*.der"))) == 1


async def test_a_vanished_node_marks_only_its_point_bad(
    machines: OpcUaSimulator, tmp_path: Path, clock: SimClock
) -> None:
    async with OpcUaDriver(furnace_device(machines, tmp_path), clock) as driver:
        await machines.remove(0, "zone2_temp_c")
        readings = await read_all(driver, clock)
    assert readings["zone2_temp_c"].quality is Quality.BAD
    assert readings["zone2_temp_c"].error == "BadNodeIdUnknown"
    assert readings["zone1_temp_c"].quality is Quality.GOOD
    assert readings["power_kw"].quality is Quality.GOOD


async def test_values_follow_the_physics_on_the_clock(
    machines: OpcUaSimulator, tmp_path: Path, clock: SimClock, furnace: Furnace
) -> None:
    async with OpcUaDriver(furnace_device(machines, tmp_path), clock) as driver:
        await clock.advance(600)
        readings = await read_all(driver, clock)
    zone1_c = readings["zone1_temp_c"].value
    assert zone1_c is not None
    assert zone1_c == pytest.approx(furnace.zone_c[0])
    assert zone1_c > 35  # ten simulated minutes of heating
    assert readings["energy_kwh"].value == pytest.approx(furnace.energy_kwh)
    assert readings["power_kw"].source_at == START.replace(minute=10)


async def test_writes_and_method_calls_reach_the_machine(
    machines: OpcUaSimulator, tmp_path: Path, clock: SimClock, furnace: Furnace
) -> None:
    async with OpcUaDriver(furnace_device(machines, tmp_path), clock) as driver:
        await driver.write("furnace/setpoint_c", 640)  # a Double node, written from an int
        await driver.write("furnace/set_enable", False)  # through the controller's method
        with pytest.raises(WriteRefused, match="outside its declared range"):
            await driver.write("furnace/setpoint_c", 1500)
        with pytest.raises(WriteRefused, match="not declared writable"):
            await driver.write("furnace/power_kw", 10)
        await clock.advance(1)  # the machine takes its inputs at its next step
        readings = await read_all(driver, clock)
    assert furnace.inputs == {"enable": False, "setpoint_c": 640.0}
    assert readings["setpoint_c"].value == 640.0
    assert readings["power_kw"].value == 0.0


async def test_nobody_listening_is_device_unavailable(tmp_path: Path, clock: SimClock) -> None:
    device = load_opcua_model("electric-furnace").model_copy(
        update={"endpoint": f"opc.tcp://127.0.0.1:{free_port()}/", "timeout_s": 0.5}
    )
    with pytest.raises(DeviceUnavailable):
        async with OpcUaDriver(device, clock):
            pass


async def test_the_agent_keeps_publishing_a_machine_across_a_server_restart(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    """Real time, with a subscription: the session is lost when the server restarts, and the
    agent reconnects and subscribes again within its backoff, without being restarted."""
    clock = SystemClock()
    furnace = Furnace()
    simulated = [SimulatedMachine(load_opcua_model("electric-furnace"), furnace)]
    async with OpcUaSimulator(
        simulated, clock=clock, port=free_port(), step_s=0.1, pki=tmp_path / "server"
    ) as server:
        (tmp_path / "pki" / "trusted").mkdir(parents=True)
        (tmp_path / "pki" / "trusted" / "m.der").write_bytes(server.certificate.read_bytes())
        site = tmp_path / "site.yaml"
        site.write_text(f"""
site: {{name: heat-treatment, park: test-park}}
broker: {{host: 127.0.0.1, port: {broker.port}}}
summary: {{interval_s: 1, settle_s: 0.3}}
devices:
  - name: furnace
    driver: opcua
    model: electric-furnace
    endpoint: {server.url}
    mode: subscribe
    poll_interval_s: 0.2
    reconnect_initial_s: 0.2
    reconnect_max_s: 1
    timeout_s: 1
    security:
      policy: Basic256Sha256
      mode: SignAndEncrypt
      trusted: {tmp_path / "pki" / "trusted"}
      rejected: {tmp_path / "pki" / "rejected"}
      certificate: {tmp_path / "pki" / "own" / "agent.der"}
      private_key: {tmp_path / "pki" / "own" / "agent-key.pem"}
""")
        agent = Agent(load_site(site), clock)
        power: asyncio.Queue[Reading] = asyncio.Queue()

        def collect_power(readings: list[Reading]) -> None:
            for reading in readings:
                if reading.point == "furnace/power_kw":
                    power.put_nowait(reading)

        agent.image.subscribe(collect_power)

        async def next_power(quality: Quality) -> Reading:
            while (reading := await power.get()).quality is not quality:
                pass
            return reading

        stop = asyncio.Event()
        topic = "energy/v1/test-park/heat-treatment/devices/furnace/summary"
        async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber:
            await subscriber.subscribe(topic, qos=1)
            async with asyncio.TaskGroup() as group:
                group.create_task(agent.run(stop))
                async with asyncio.timeout(20):
                    await next_power(Quality.GOOD)
                    await server.restart()
                    await next_power(Quality.BAD)  # the keep-alive saw the session go
                    back = await next_power(Quality.GOOD)  # a new session, subscribed again
                    assert back.source_at is not None
                    restarted_at = back.at
                    async for message in subscriber.messages:
                        summary = json.loads(bytes(message.payload))
                        if summary["interval_start"] > restarted_at.isoformat() and (
                            summary["good_ratio"] == 1.0
                        ):
                            break
                stop.set()
    [poller] = agent.pollers
    assert poller.stats.connection_failures >= 1
    assert summary["power_avg_kw"] > 0


async def test_points_by_browse_path_and_a_wrong_path_marks_only_that_point(
    machines: OpcUaSimulator, tmp_path: Path, clock: SimClock
) -> None:
    device = furnace_device(machines, tmp_path)
    points = dict(device.points)
    points["power_by_path"] = points["power_kw"].model_copy(
        update={"node_id": None, "browse_path": "0:Objects/2:Furnace/2:power_kw"}
    )
    points["typo_by_path"] = points["power_kw"].model_copy(
        update={"node_id": None, "browse_path": "0:Objects/2:Furnace/2:powr_kw"}
    )
    async with OpcUaDriver(device.model_copy(update={"points": points}), clock) as driver:
        readings = await read_all(driver, clock)
    assert readings["power_by_path"].value == readings["power_kw"].value
    assert readings["typo_by_path"].quality is Quality.BAD
    assert "browse path not found" in (readings["typo_by_path"].error or "")
    assert readings["state"].quality is Quality.GOOD


ROOT = Path(__file__).resolve().parents[1]


async def test_python_m_simulators_opcua_serves_one_catalogue_machine(tmp_path: Path) -> None:
    """`python -m simulators opcua MODEL`: a machine to point `edge-agent run` at."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators",
        "opcua",
        "process-chiller",
        "--port",
        str(port),
        "--pki",
        str(tmp_path / "pki"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            line = (await process.stdout.readline()).decode()
            while "simulator: OPC UA on" not in line:
                assert line, "the simulator exited"
                line = (await process.stdout.readline()).decode()
        assert f"opc.tcp://127.0.0.1:{port}" in line
        enable = load_opcua_model("process-chiller").points["enable"].node_id
        async with Client(f"opc.tcp://127.0.0.1:{port}/park/") as client:
            assert await client.get_node(enable).read_value() is True
    finally:
        process.terminate()
        await process.wait()
