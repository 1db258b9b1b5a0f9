"""Layer 2 in the cycle: the deferrable loads' plan, re-made each slot, turned into actions.

Filled in by the planner's integration; without deferrable loads it decides nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from edge_agent.config.schema import SiteConfig
from edge_agent.model import PointId, Reading

from .loads import Action, LoadState

__all__ = ["Scheduler"]


class Scheduler:
    def __init__(self, config: SiteConfig, states: Mapping[str, LoadState]) -> None:
        self.site = config
        self.states = states

    def step(
        self, now: datetime, snapshot: Mapping[PointId, Reading], limit_kw: float
    ) -> list[Action]:
        return []
