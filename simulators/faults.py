"""Faults a simulated Modbus unit can be told to have, as real devices have them.

Set `unit.fault` on a running simulator and clear it with `None`; the next request sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Fault"]


@dataclass(frozen=True, slots=True)
class Fault:
    kind: Literal["no_answer", "slow", "exception", "corrupt"]
    delay_s: float = 0.0
    """slow: real seconds before the answer (longer than the client's timeout = late answer)."""
    code: int = 4
    """exception: the Modbus exception code, 1 to 6, 10 or 11."""

    @classmethod
    def no_answer(cls) -> Fault:
        """The unit is dead or unplugged: requests are never answered."""
        return cls("no_answer")

    @classmethod
    def slow(cls, delay_s: float) -> Fault:
        return cls("slow", delay_s=delay_s)

    @classmethod
    def exception(cls, code: int) -> Fault:
        return cls("exception", code=code)

    @classmethod
    def corrupt(cls) -> Fault:
        """Answers arrive mangled (a bad CRC on RTU, a broken PDU on TCP)."""
        return cls("corrupt")
