"""`edge-agent probe`: a raw register window, decoded every way, to find a device's settings.

An integrator with an unknown device and a vague manual reads a window where a known value
should be (a voltage near 230, a frequency near 50) and looks for the type and byte order
that shows it. Values that look like plant measurements are starred.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from edge_agent.clock import SystemClock

from .client import Connection
from .codec import ByteOrder, DataType, decode
from .config import ModbusLine
from .planner import Table

__all__ = ["format_window", "probe"]


async def probe(line: ModbusLine, unit: int, table: Table, address: int, count: int) -> list[int]:
    connection = Connection(line, SystemClock())
    await connection.open()
    try:
        return await connection.read(table, address, count, unit)
    finally:
        connection.close()


def _plausible(value: float) -> bool:
    return math.isfinite(value) and (value == 0 or 1e-3 <= abs(value) <= 1e7)


def _number(value: float | int | bool) -> str:
    if isinstance(value, float):
        star = "*" if _plausible(value) else " "
        return f"{value:>14.6g}{star}"
    return f"{value:>15}"


def format_window(words: Sequence[int], start: int, table: Table, *, wide: bool = False) -> str:
    lines = [
        f"{len(words)} {'bits' if table.is_bits else 'registers'} of {table.value} from "
        f"address {start} (zero-based; a manual's 1-based number is one more)"
    ]
    if table.is_bits:
        for offset in range(0, len(words), 16):
            bits = " ".join(str(b) for b in words[offset : offset + 16])
            lines.append(f"{start + offset:>6}  {bits}")
        return "\n".join(lines)
    lines.append(f"{'addr':>6}  {'hex':>4}  {'uint16':>6}  {'int16':>6}  {'BADC u16':>8}")
    for offset, word in enumerate(words):
        lines.append(
            f"{start + offset:>6}  {word:04X}  {word:>6}  "
            f"{decode([word], DataType.INT16, ByteOrder.ABCD):>6}  "
            f"{decode([word], DataType.UINT16, ByteOrder.BADC):>8}"
        )
    sizes = [(2, (DataType.FLOAT32, DataType.INT32, DataType.UINT32))]
    if wide:
        sizes.append((4, (DataType.FLOAT64, DataType.INT64, DataType.UINT64)))
    for width, types in sizes:
        lines.append("")
        lines.append(
            f"{width * 16}-bit values starting at each address (* = looks like a measurement):"
        )
        lines.append(f"{'addr':>6}  {'order':<5}" + "".join(f"{t.value:>16}" for t in types))
        for offset in range(len(words) - width + 1):
            for order in ByteOrder:
                chunk = words[offset : offset + width]
                cells = "".join(_number(decode(chunk, t, order)) + " " for t in types)
                lines.append(f"{start + offset:>6}  {order.value:<5}{cells}")
    return "\n".join(lines)
