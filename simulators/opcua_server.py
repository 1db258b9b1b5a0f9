"""An OPC UA server on loopback exposing simulated production machines from node maps.

Each machine is a catalogue model with `protocol: opcua` (edge_agent/catalogue/) and a physics
model from `simulators.equipment`. One server is one PLC: it may serve many machines, each
under its own node-id prefix (`served_map`). Every `step_s` of the clock the server steps the
physics at the clock's time (also while the server is down: a plant does not stop with its
network) and writes to the address space only the values that changed (a write notifies
subscribers); a Read returns the latest values with the time of the last scan
as their source timestamp. Client writes reach the machine's inputs at once. It offers the
security modes plants use, with a generated server certificate, and scriptable faults:
restart, and a node that disappears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from asyncua import Server, ua
from asyncua import __version__ as asyncua_version
from asyncua.common.methods import uamethod
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.server.address_space import NodeData
from asyncua.server.internal_server import InternalServer
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers.opcua.config import OpcUaDevice, OpcUaPoint
from edge_agent.clock import Clock

from .equipment import Machine, Value

__all__ = ["OpcUaSimulator", "SimulatedMachine", "StepStats", "served_map"]

logging.getLogger("asyncua").setLevel(logging.CRITICAL)

NAMESPACE = "urn:park-edge-agent:machines"
APPLICATION_URI = "urn:park-edge-agent:simulator"

_SHELF_HOME = Path(tempfile.gettempdir()) / (
    f"edge-agent-opcua-{asyncua_version}-py{sys.version_info[0]}.{sys.version_info[1]}"
)
_SHELF = _SHELF_HOME / "standard-address-space"
_shelf_lock = asyncio.Lock()


async def _standard_shelf() -> Path:
    """OPC UA's standard address space as a shelf, built once per machine and shared.

    Filling the standard address space costs a server two to three seconds; a bench with a
    server per PLC starts many. Loaded lazily from a shelf, a start costs milliseconds. The
    shelf is built in a folder of its own and renamed into place, so that two processes
    building it at once never see half of one.
    """
    async with _shelf_lock:
        if not _SHELF_HOME.is_dir():
            building = Path(tempfile.mkdtemp(prefix="edge-agent-opcua-"))
            # A missing shelf file makes asyncua fill the space and write the shelf.
            await InternalServer().load_standard_address_space(building / _SHELF.name)
            await asyncio.to_thread(_publish, building)
    return _SHELF


def _publish(building: Path) -> None:
    try:
        building.rename(_SHELF_HOME)
    except OSError:  # another process was first
        shutil.rmtree(building, ignore_errors=True)


class _ShelvedInternalServer(InternalServer):  # type: ignore[misc]
    async def load_standard_address_space(self, shelf_file: Path | None = None) -> None:
        self.aspace.load_aspace_shelf(await _standard_shelf())


@dataclass
class SimulatedMachine:
    device: OpcUaDevice
    """The node map: a catalogue model (`load_model`) or a site's device."""
    physics: Machine


@dataclass
class StepStats:
    """What the steps cost the address space: the bench keeps `writes / steps` small."""

    steps: int = 0
    writes: int = 0
    """Values written by steps (changed outputs, and inputs a machine put back itself)."""


@dataclass
class _Served:
    """One variable node: the value a Read returns, and whose input it is."""

    machine: int
    name: str
    node_id: ua.NodeId
    variant: ua.VariantType
    value: Value
    writable: bool


def served_map(device: OpcUaDevice, prefix: str) -> OpcUaDevice:
    """`device` with every string node id under `prefix`, as a server shared by several
    machines serves it: `ns=2;s=Compressor.PressureBar` becomes
    `ns=2;s=compressor-1.Compressor.PressureBar`. Give the same map to the simulator and to
    the site's device, so that two machines of one model on one server never collide."""

    def moved(text: str | None) -> str | None:
        if text is None:
            return None
        node_id = ua.NodeId.from_string(text)
        if not isinstance(node_id.Identifier, str):
            raise ValueError(f"{device.name}: only string node ids can be prefixed: {text}")
        namespace = text.split(";", 1)[0] + ";" if text.startswith("ns=") else ""
        return f"{namespace}s={prefix}.{node_id.Identifier}"

    points: dict[str, OpcUaPoint] = {
        name: point.model_copy(
            update={"node_id": moved(point.node_id), "method": moved(point.method)}
        )
        for name, point in device.points.items()
    }
    return device.model_copy(update={"points": points})


class OpcUaSimulator:
    """`async with OpcUaSimulator(machines, clock=..., port=...) as sim:` serves on `sim.url`."""

    def __init__(
        self,
        machines: list[SimulatedMachine],
        *,
        clock: Clock,
        port: int,
        pki: Path,
        step_s: float = 1.0,
    ) -> None:
        self._machines = machines
        self._clock = clock
        self.port = port
        self._pki = pki
        self._step_s = step_s
        self._server: Server | None = None
        self._nodes: dict[tuple[int, str], Any] = {}
        self._served: dict[tuple[int, str], _Served] = {}
        self._by_node: dict[ua.NodeId, _Served] = {}
        self._scan_at = clock.now().replace(tzinfo=None)
        self.stats = StepStats()
        self._stepper: asyncio.Task[None] | None = None
        self.certificate = pki / "server-cert.der"
        self._key = pki / "server-key.pem"

    @property
    def url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/park/"

    async def __aenter__(self) -> Self:
        self._pki.mkdir(parents=True, exist_ok=True)
        await setup_self_signed_certificate(
            self._key,
            self.certificate,
            APPLICATION_URI,
            socket.gethostname(),
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            {"organizationName": "park-edge-agent simulator"},
        )
        await self._start()
        self._stepper = asyncio.create_task(self._step_forever(), name="opcua simulator")
        self._clock.track(self._stepper)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stepper is not None:
            self._stepper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stepper
        await self._stop()

    async def restart(self) -> None:
        """Stop and start again on the same port: every session is lost, state is kept."""
        await self._stop()
        await self._start()

    async def remove(self, machine: int, point: str) -> None:
        """The node of `point` disappears, as after a PLC program change."""
        node = self._nodes.pop((machine, point))
        self._by_node.pop(self._served.pop((machine, point)).node_id, None)
        assert self._server is not None
        await self._server.delete_nodes([node])

    async def _start(self) -> None:
        server = Server(iserver=_ShelvedInternalServer())
        server.disable_clock()  # its one-second loop would delay every stop by up to a second
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("park-edge-agent machine simulator")
        await server.set_application_uri(APPLICATION_URI)
        await server.load_certificate(str(self.certificate))
        await server.load_private_key(str(self._key))
        server.set_security_policy(
            [
                ua.SecurityPolicyType.NoSecurity,
                ua.SecurityPolicyType.Basic256Sha256_Sign,
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
                ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
            ]
        )
        index = await server.register_namespace(NAMESPACE)
        self._nodes.clear()
        self._served.clear()
        self._by_node.clear()
        for number, machine in enumerate(self._machines):
            await self._add_machine(server, index, number, machine)
        await server.start()
        self._server = server

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    async def _add_machine(
        self, server: Server, index: int, number: int, machine: SimulatedMachine
    ) -> None:
        values = machine.physics.values()
        objects: dict[str, Any] = {}
        for name, point in machine.device.points.items():
            if point.method is not None:
                continue
            if point.node_id is None:
                continue  # the simulator serves maps written with node ids
            node_id = _node_id(point.node_id, index)
            folder = str(node_id.Identifier).split(".", 1)[0]
            if folder not in objects:
                objects[folder] = await server.nodes.objects.add_object(
                    ua.NodeId(folder, index), ua.QualifiedName(folder, index)
                )
            value = values.get(name, 0.0)
            variant = (
                ua.VariantType.Boolean
                if isinstance(value, bool)
                else ua.VariantType.Int32
                if isinstance(value, int)
                else ua.VariantType.Double
            )
            variable = await objects[folder].add_variable(
                node_id, ua.QualifiedName(name, index), value, variant
            )
            if point.writable:
                await variable.set_writable()
            self._nodes[(number, name)] = variable
            served = _Served(number, name, variable.nodeid, variant, value, point.writable)
            self._served[(number, name)] = served
            self._by_node[variable.nodeid] = served
            server.set_attribute_value_callback(variable.nodeid, self._read)
            server.set_attribute_value_setter(variable.nodeid, self._written)
        for name, point in machine.device.points.items():
            if point.method is None:
                continue
            target = name.removeprefix("set_")

            @uamethod  # type: ignore[untyped-decorator]
            async def command(
                parent: Any,
                value: Any,
                *,
                _target: str = target,
                _machine: SimulatedMachine = machine,
                _number: int = number,
            ) -> None:
                _machine.physics.inputs[_target] = value
                node = self._nodes.get((_number, _target))
                if node is not None:
                    await node.write_value(value)

            folder = str(_node_id(point.node_id or "", index).Identifier)
            parent = objects.get(folder) or await server.nodes.objects.add_object(
                ua.NodeId(folder, index), ua.QualifiedName(folder, index)
            )
            await parent.add_method(
                _node_id(point.method, index), name, command, [ua.VariantType.Boolean], []
            )

    async def _step_forever(self) -> None:
        while True:
            await self._clock.sleep(self._step_s)
            await self._step()

    def _read(self, node_id: ua.NodeId, attr: ua.AttributeIds) -> ua.DataValue:
        """A Read: the latest value, stamped with the last scan (as a PLC's cycle image)."""
        served = self._by_node[node_id]
        return ua.DataValue(ua.Variant(served.value, served.variant), SourceTimestamp=self._scan_at)

    def _written(self, node: NodeData, attr: ua.AttributeIds, value: ua.DataValue) -> None:
        """Every write, a client's or a step's: an input reaches the machine at once."""
        served = self._by_node.get(node.nodeid)
        if served is None or value.Value is None:
            return
        served.value = value.Value.Value
        if served.writable:
            physics = self._machines[served.machine].physics
            physics.inputs[served.name] = served.value
            physics.written(served.name, self._clock.now())

    async def _step(self) -> None:
        """Step every machine's physics, then show what changed in the address space. The
        plant runs on the clock whatever the network does: while the server is down (a
        PLC's communications cut off) the machines go on stepping, and the server shows
        their state as it then is when it comes back."""
        now = self._clock.now()
        self._scan_at = now.replace(tzinfo=None)
        self.stats.steps += 1
        for machine in self._machines:
            machine.physics.step(self._step_s, now)
        if self._server is None:
            return
        for number, machine in enumerate(self._machines):
            for name, value in machine.physics.values().items():
                served = self._served.get((number, name))
                if served is None or served.value == value:
                    continue
                served.value = value
                self.stats.writes += 1
                await self._server.write_attribute_value(
                    served.node_id,
                    ua.DataValue(ua.Variant(value, served.variant), SourceTimestamp=self._scan_at),
                )


def _node_id(text: str, index: int) -> ua.NodeId:
    """The map's `ns=2;s=...` in the namespace the server registered."""
    node_id = ua.NodeId.from_string(text)
    return ua.NodeId(node_id.Identifier, index)
