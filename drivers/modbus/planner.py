"""Read planning: as few Modbus requests as the protocol and the device allow.

Points of one table are sorted by address and merged into blocks while the block stays
within the device's maximum per read and the unread gap between two points stays within the
allowed gap. Filling gaps saves round trips, but many devices answer exception 02 for a read
that touches an unmapped address, so the allowed gap is a per-device setting (0 by default,
set in the catalogue for devices known to allow it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["MAX_BITS_PER_READ", "MAX_REGISTERS_PER_READ", "ReadRequest", "Span", "Table", "plan"]

MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000


class Table(StrEnum):
    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def function_code(self) -> int:
        return _READ_FUNCTION[self]

    @property
    def is_bits(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE_INPUT)


_READ_FUNCTION = {Table.COIL: 1, Table.DISCRETE_INPUT: 2, Table.HOLDING: 3, Table.INPUT: 4}


@dataclass(frozen=True, slots=True)
class Span:
    """What the planner needs to know of a point: where it lives and how wide it is."""

    key: str
    table: Table
    address: int
    width: int
    """Registers (or bits, for coils and discrete inputs) the value occupies."""

    @property
    def end(self) -> int:
        return self.address + self.width


@dataclass(frozen=True, slots=True)
class ReadRequest:
    table: Table
    start: int
    count: int
    spans: tuple[Span, ...]

    def describe(self) -> str:
        return (
            f"FC{self.table.function_code:02d} {self.table.value:<14} "
            f"addr {self.start:>5}  count {self.count:>4}  "
            f"({len(self.spans)} point{'s' if len(self.spans) != 1 else ''})"
        )


def plan(
    spans: Iterable[Span],
    *,
    max_registers: int = MAX_REGISTERS_PER_READ,
    max_bits: int = MAX_BITS_PER_READ,
    max_gap: int = 0,
) -> list[ReadRequest]:
    """Group `spans` into requests; every span lands in exactly one request."""
    by_table: dict[Table, list[Span]] = {}
    for span in spans:
        by_table.setdefault(span.table, []).append(span)

    requests: list[ReadRequest] = []
    for table in Table:  # a stable order: coils first, input registers last
        members = sorted(by_table.get(table, []), key=lambda s: (s.address, s.width))
        limit = max_bits if table.is_bits else max_registers
        block: list[Span] = []
        start = end = 0
        for span in members:
            if span.width > limit:
                raise ValueError(f"{span.key} is {span.width} wide, more than {limit} per read")
            fits = block and span.address - end <= max_gap and max(end, span.end) - start <= limit
            if fits:
                block.append(span)
                end = max(end, span.end)
                continue
            if block:
                requests.append(ReadRequest(table, start, end - start, tuple(block)))
            block, start, end = [span], span.address, span.end
        if block:
            requests.append(ReadRequest(table, start, end - start, tuple(block)))
    return requests
