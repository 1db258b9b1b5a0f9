"""The site file a factory's agent gets on the bench: what a plant engineer would write for
it, as a validated `SiteConfig`, from the scenario and the plant as served (its ports).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.config.loader import load_modbus_model
from edge_agent.config.schema import SiteConfig

from .equipment.pv import LATITUDE_DEG as PV_LATITUDE_DEG
from .equipment.pv import LONGITUDE_DEG as PV_LONGITUDE_DEG
from .factory import Plant
from .load_policies import Mode
from .scenario import FactorySpec, Scenario

__all__ = ["site_config"]


def site_config(
    scenario: Scenario,
    factory: FactorySpec,
    plant: Plant,
    *,
    broker_port: int,
    work: Path,
    mode: Mode = "agent",
) -> SiteConfig:
    """The site file a plant engineer would write for this factory, as a model: the incomer
    on Modbus, each machine on the factory's PLC, and (with a limit) the loads it controls."""
    interval = scenario.poll_interval_s
    meter = load_modbus_model("eastron-sdm630").model_dump(
        exclude={"driver", "name", "host", "port"}
    )
    devices: list[dict[str, Any]] = [
        {
            **meter,
            "driver": "modbus-tcp",
            "name": "incomer",
            "host": "127.0.0.1",
            "port": plant.meter_port or 1,
            "poll_interval_s": interval,
        }
    ]
    for machine in factory.machines:
        served = plant.maps[machine.name]
        devices.append(
            {
                **served.model_dump(exclude={"name", "endpoint", "points"}),
                "name": machine.name,
                "endpoint": plant.url or "opc.tcp://127.0.0.1:1",
                "mode": "read",
                "poll_interval_s": interval,
                "points": {n: p.model_dump() for n, p in served.points.items() if p.method is None},
            }
        )
    for device in devices:  # every point at the scenario's one interval
        for point in device["points"].values():
            point["poll_interval_s"] = None
    loads = [
        load for machine in factory.machines if (load := machine.load_policy(mode)) is not None
    ]
    control = None
    if factory.limit_kw is not None and mode != "none":
        control = {
            "mode": "active",
            "meter": "incomer",
            "limit_kw": factory.limit_kw,
            "cycle_s": interval,
            "heartbeat_s": max(interval, 10),
            "write_interval_s": interval,
            "loads": loads,
            # A classic limiter sheds for the limit alone.
            "shift_stores": mode == "agent",
            # The rooftop PV's own power: the plan forecasts it, and the base-load profile
            # is learned without it.
            "generation": [{"device": m.name} for m in factory.machines if m.model == "rooftop-pv"],
        }
    return SiteConfig.model_validate(
        {
            "site": {
                "name": factory.name,
                "park": scenario.park,
                "timezone": scenario.timezone,
                # Where the bench's sun is (simulators/equipment/pv.py): Binh Duong.
                "latitude_deg": PV_LATITUDE_DEG,
                "longitude_deg": PV_LONGITUDE_DEG,
            },
            "broker": {"host": "127.0.0.1", "port": broker_port},
            "summary": {"interval_s": scenario.summary_interval_s, "settle_s": interval},
            "outbox": {"path": str(work / f"{factory.name}.sqlite")},
            "tariff": scenario.tariff_of(factory).model_dump(),
            "devices": devices,
            "control": control,
        }
    )
