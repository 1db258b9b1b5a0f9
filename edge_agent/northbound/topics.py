"""The topic scheme, one place: a whole park on one broker.

    energy/v1/<park>/<site>/status                     retained, online / offline (Last Will)
    energy/v1/<park>/<site>/summary                    the site per interval: incomer and control
    energy/v1/<park>/<site>/devices/<device>/summary   one per device per interval, QoS 1
    energy/v1/<park>/<site>/commands/<type>            to the agent: demand_response, override,
                                                       advisory (QoS 1)
    energy/v1/<park>/<site>/command-responses          from the agent: accepted / rejected

The park operator subscribes `energy/v1/<park>/+/devices/+/summary` for every factory's
devices, or `energy/v1/<park>/+/status` for which gateways are up.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Topics"]


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    park: str
    site: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.park}/{self.site}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def site_summary(self) -> str:
        return f"{self.base}/summary"

    def device_summary(self, device: str) -> str:
        return f"{self.base}/devices/{device}/summary"

    @property
    def commands(self) -> str:
        """Subscribed: `.../commands/<type>` (demand_response, override, advisory)."""
        return f"{self.base}/commands/+"

    @property
    def command_responses(self) -> str:
        return f"{self.base}/command-responses"
