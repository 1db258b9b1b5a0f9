"""The site file: one factory's gateway, its broker, its devices and its summaries.

`driver:` picks the device's model from a discriminated union of the driver registry's
models (`drivers/registry.py`); a new protocol joins that table, not this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from drivers.modbus.config import ModbusLine
from drivers.registry import AnyDevice
from edge_agent.control.config import ControlConfig
from edge_agent.energy.tariff import EmissionsConfig, TariffConfig

from .base import DAY_S, Name, Seconds, StrictModel
from .problems import field_path
from .rules import site_findings

__all__ = ["BrokerConfig", "Device", "SiteConfig", "SiteInfo", "SummaryConfig", "stale_age_s"]

Device = Annotated[AnyDevice, Field(discriminator="driver")]


def stale_age_s(device: AnyDevice, point: str) -> float:
    """How old a point's reading may be and still be believed: the device's `stale_after_s`,
    else three of the point's poll intervals. The process image and the summariser both
    judge readings by it."""
    interval = device.points[point].poll_interval_s or device.poll_interval_s
    return device.stale_after_s or 3 * interval


class SiteInfo(StrictModel):
    name: Name
    """The factory's id in the park, e.g. `press-shop`; the MQTT topics carry it."""
    park: Name
    """The park's id, e.g. `binh-duong-1`."""
    timezone: str = "Asia/Ho_Chi_Minh"
    """IANA zone of the site; tariff hours and daily figures follow it."""
    latitude_deg: float | None = Field(default=None, ge=-90, le=90)
    """The site's latitude (degrees, north positive), e.g. 11.0 in Binh Duong: with
    `longitude_deg`, it places the sun for the planner's PV forecast; without them the
    planner forecasts no generation."""
    longitude_deg: float | None = Field(default=None, ge=-180, le=180)
    """The site's longitude (degrees, east positive), e.g. 106.65 in Binh Duong."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _both_coordinates(self) -> SiteInfo:
        if (self.latitude_deg is None) != (self.longitude_deg is None):
            raise ValueError("set both `latitude_deg` and `longitude_deg`, or neither")
        return self


class TlsConfig(StrictModel):
    ca: Path
    """The CA that signed the broker's certificate; the broker is verified against it."""
    certificate: Path | None = None
    """A client certificate, where the broker asks for one."""
    private_key: Path | None = None


class BrokerConfig(StrictModel):
    """The park's central MQTT broker."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    """Write `${MQTT_PASSWORD}` and set the variable; never the secret itself."""
    client_id: str | None = None
    """Defaults to `edge-<park>-<site>`."""
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    topic_prefix: str = "energy/v1"
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    tls: TlsConfig | None = None
    """Set to connect with TLS (port 8883 by convention)."""
    reconnect_initial_s: Seconds = 1.0
    reconnect_max_s: Seconds = 60.0

    @field_validator("username", "password", "client_id", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`${MQTT_USERNAME:-}` with the variable unset means "no username", not ""."""
        return None if value == "" else value


class SummaryConfig(StrictModel):
    interval_s: int = Field(default=60, ge=1, le=3600)
    """Length of one summary; intervals are aligned to multiples of it since midnight UTC."""
    settle_s: float = Field(default=2.0, ge=0, le=60)
    """How long after an interval ends the summary waits for the boundary's readings."""
    billing_window_s: int = Field(default=900, ge=60, le=3600)
    """The utility's demand window (15 or 30 min); each summary carries the window's demand."""

    @field_validator("interval_s")
    @classmethod
    def _divides_day(cls, value: int) -> int:
        if 86400 % value:
            raise ValueError("must divide a day (86400 s) so that intervals align every day")
        return value


class OutboxConfig(StrictModel):
    """Where summaries wait for the broker; see the README for the durability trade-off."""

    path: Path = Path("state/outbox.sqlite")
    """Relative to the working directory (the systemd unit's state directory)."""
    max_messages: int = Field(default=100_000, ge=10, le=10_000_000)
    max_age_s: float = Field(default=30 * DAY_S, gt=0, le=366 * DAY_S)
    """Summaries older than this are dropped unsent; at most a year (366 days)."""
    fsync: Literal["normal", "full"] = "normal"


class MetricsConfig(StrictModel):
    """The agent's own HTTP endpoint: `/metrics` (Prometheus text) and `/health` (JSON)."""

    port: int | None = Field(default=None, ge=1, le=65535)
    """Unset: no endpoint. 9108 is a common choice; see the README before exposing it."""
    host: str = "127.0.0.1"
    """The address to listen on; `0.0.0.0` lets a Prometheus elsewhere scrape it."""
    failing_after_intervals: int = Field(default=5, ge=2, le=1000)
    """`/health` says failing when no device has been read for this many poll intervals."""


class SiteConfig(StrictModel):
    site: SiteInfo
    broker: BrokerConfig = BrokerConfig()
    summary: SummaryConfig = SummaryConfig()
    outbox: OutboxConfig = OutboxConfig()
    metrics: MetricsConfig = MetricsConfig()
    tariff: TariffConfig = TariffConfig()
    emissions: EmissionsConfig = EmissionsConfig()
    modbus_lines: list[ModbusLine] = Field(default_factory=list)
    """Serial lines and gateways shared by several `driver: modbus` devices."""
    devices: list[Device] = Field(min_length=1)
    control: ControlConfig | None = None
    """The demand limit and the loads the agent may switch; without it the agent only
    measures and reports."""

    @classmethod
    def without_rules(cls, data: object) -> SiteConfig:
        """Validated without the cross-field rules, for a caller that reports their findings
        itself, at their places in the file (the loader)."""
        return cls.model_validate(data, context={_RULES_BY_CALLER: True})

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> SiteConfig:
        """The cross-field rules (`config.rules`): every problem, each with its field."""
        if isinstance(info.context, dict) and info.context.get(_RULES_BY_CALLER):
            return self
        findings = site_findings(self)
        if findings:
            data = self.model_dump()
            raise ValueError(
                "; ".join(f"{field_path(data, f.path)}: {f.message}" for f in findings)
            )
        return self


_RULES_BY_CALLER = "site rules by the caller"
"""The validation context's key that leaves the cross-field rules to the caller."""
