"""Configuration of an OPC UA device (a machine or a PLC) and its points."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, NonNegativeFloat, model_validator

from drivers.modbus.config import PointRole
from edge_agent.config.base import Name, Seconds, StrictModel

__all__ = ["OpcUaDevice", "OpcUaPoint", "OpcUaSecurity"]


class OpcUaPoint(StrictModel):
    """A variable (read, subscribed, written) or a method (called with the value written)."""

    node_id: str | None = Field(default=None, pattern=r"^(ns=\d+;)?[isgb]=.+$")
    """`ns=2;s=Furnace.PowerKw` or `ns=2;i=1042`."""
    browse_path: str | None = Field(default=None, pattern=r"^\d+:[^/]+(/\d+:[^/]+)*$")
    """Instead of `node_id`: `0:Objects/2:Furnace/2:power_kw` from the Root, resolved at
    each connect (node ids of some servers change between restarts, browse names do not)."""
    method: str | None = Field(default=None, pattern=r"^(ns=\d+;)?[isgb]=.+$")
    """Set for a command: writing the point calls this method on the object `node_id`, with
    the value as its one argument."""
    unit: str | None = None
    role: PointRole | None = None
    scale: float = 1.0
    offset: float = 0.0
    poll_interval_s: Seconds | None = None
    """Defaults to the device's; with `subscribe`, the publishing interval."""
    deadband: NonNegativeFloat | None = None
    """Absolute deadband: asked of the server as a data-change filter when subscribed."""
    deadband_pct: NonNegativeFloat | None = None
    """Percent of the node's EURange, asked of the server when subscribed (where the server
    supports it); otherwise applied by the agent's change reporting."""
    writable: bool = False
    min: float | None = None
    max: float | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError("give either node_id or browse_path")
        if self.method is not None and self.node_id is None:
            raise ValueError("a method point names its object by node_id")
        if self.method is not None and not self.writable:
            raise ValueError("a method point is a command: it must be writable")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class OpcUaSecurity(StrictModel):
    policy: Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = "None"
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path = Path("pki/own/edge-agent.der")
    """The agent's certificate; generated with its key on first use when absent."""
    private_key: Path = Path("pki/own/edge-agent-key.pem")
    trusted: Path = Path("pki/trusted")
    """Folder of server certificates (DER or PEM) the agent trusts."""
    rejected: Path = Path("pki/rejected")
    """Where an untrusted server's certificate is put, to be checked and moved to trusted."""
    trust_on_first_use: bool = False
    """Trust the first certificate a server shows. Off: a certificate must be placed."""
    application_uri: str = "urn:park-edge-agent:client"

    @model_validator(mode="after")
    def _pairs(self) -> Self:
        if (self.policy == "None") != (self.mode == "None"):
            raise ValueError("policy None goes with mode None, and only with it")
        return self


class OpcUaDevice(StrictModel):
    """An OPC UA server: a machine, a line controller or a PLC."""

    driver: Literal["opcua"]
    name: Name
    model: str | None = None
    endpoint: str = Field(pattern=r"^opc\.tcp://")
    """`opc.tcp://192.168.10.30:4840`, or with a path the server gives."""
    security: OpcUaSecurity = OpcUaSecurity()
    username: str | None = None
    """Write `${OPCUA_USER}` and set the variable."""
    password: str | None = None
    poll_interval_s: Seconds = 1.0
    mode: Literal["read", "subscribe"] = "read"
    """read: one Read service call per poll group; subscribe: monitored items, and each poll
    tick takes the latest notified values."""
    queue_size: int = Field(default=10, ge=1, le=10_000)
    timeout_s: Seconds = 2.0
    reconnect_initial_s: Seconds = 1.0
    reconnect_max_s: Seconds = 30.0
    stale_after_s: Seconds | None = None
    points: dict[Name, OpcUaPoint] = Field(min_length=1)
