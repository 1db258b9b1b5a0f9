"""Register <-> value conversion: data types, byte/word order, scale and offset.

Byte orders are named by where the bytes of a big-endian value A B C D (A most significant)
end up on the wire, as device manuals and integrators name them:

- ABCD: big-endian words, big-endian bytes (the Modbus default, e.g. Eastron, SunSpec)
- CDAB: little-endian words ("word swap"), big-endian bytes (common on Schneider, many PLCs)
- BADC: big-endian words, bytes swapped in each word ("byte swap")
- DCBA: fully little-endian

For 64-bit values the same rule extends to four words. Reads and writes go through the same
two functions, so a write can never use another order than the read of the same point.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Sequence
from enum import StrEnum

__all__ = [
    "ByteOrder",
    "CodecError",
    "DataType",
    "decode",
    "decoder",
    "encode",
    "to_engineering",
    "to_raw",
]


class DataType(StrEnum):
    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @property
    def registers(self) -> int:
        """How many 16-bit registers one value occupies."""
        return _FORMATS[self][1] // 2

    @property
    def is_float(self) -> bool:
        return self in (DataType.FLOAT32, DataType.FLOAT64)

    def raw_range(self) -> tuple[float, float]:
        """The smallest and largest raw value the type can hold."""
        if self is DataType.BOOL:
            return (0, 1)
        if self.is_float:
            limit = 3.4028234663852886e38 if self is DataType.FLOAT32 else 1.7976931348623157e308
            return (-limit, limit)
        bits = _FORMATS[self][1] * 8
        if _FORMATS[self][0].islower():
            return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return (0, 2**bits - 1)


class ByteOrder(StrEnum):
    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"

    @property
    def words_reversed(self) -> bool:
        return self in (ByteOrder.CDAB, ByteOrder.DCBA)

    @property
    def bytes_swapped(self) -> bool:
        return self in (ByteOrder.BADC, ByteOrder.DCBA)


class CodecError(ValueError):
    """A value cannot be decoded from, or encoded into, the registers given."""


# struct format character and size in bytes; BOOL is one register, non-zero is true.
_FORMATS: dict[DataType, tuple[str, int]] = {
    DataType.BOOL: ("H", 2),
    DataType.INT16: ("h", 2),
    DataType.UINT16: ("H", 2),
    DataType.INT32: ("i", 4),
    DataType.UINT32: ("I", 4),
    DataType.INT64: ("q", 8),
    DataType.UINT64: ("Q", 8),
    DataType.FLOAT32: ("f", 4),
    DataType.FLOAT64: ("d", 8),
}


def _big_endian_to_wire(data: bytes, order: ByteOrder) -> list[int]:
    words = []
    for i in range(0, len(data), 2):
        hi, lo = data[i], data[i + 1]
        words.append((lo << 8) | hi if order.bytes_swapped else (hi << 8) | lo)
    return list(reversed(words)) if order.words_reversed else words


Decoder = Callable[[Sequence[int]], int | float | bool]


@functools.cache
def decoder(dtype: DataType, order: ByteOrder) -> Decoder:
    """A compiled decoder for one type and order: the hot path of every poll.

    Swapping the bytes of each word is packing the words little-endian; swapping the words
    is reversing them first; one struct call then reads the value.
    """
    count = dtype.registers
    pack = struct.Struct(("<" if order.bytes_swapped else ">") + "H" * count).pack
    unpack = struct.Struct(">" + _FORMATS[dtype][0]).unpack
    reverse = order.words_reversed

    def run(registers: Sequence[int]) -> int | float | bool:
        if len(registers) != count:
            raise CodecError(f"{dtype} needs {count} registers, got {len(registers)}")
        try:
            raw = unpack(pack(*(reversed(registers) if reverse else registers)))[0]
        except struct.error as exc:  # a word outside 0..65535
            raise CodecError(str(exc)) from None
        return bool(raw) if dtype is DataType.BOOL else raw

    return run


def decode(registers: Sequence[int], dtype: DataType, order: ByteOrder) -> int | float | bool:
    """Decode the raw value held in `registers` (exactly `dtype.registers` of them)."""
    return decoder(dtype, order)(registers)


def encode(raw: int | float | bool, dtype: DataType, order: ByteOrder) -> list[int]:
    """Encode a raw value into registers; the inverse of `decode`."""
    fmt, _size = _FORMATS[dtype]
    if dtype is DataType.BOOL:
        raw = 1 if raw else 0
    elif not dtype.is_float:
        if isinstance(raw, float) and not raw.is_integer():
            raise CodecError(f"{raw} is not a whole number; {dtype} holds integers only")
        raw = int(raw)
    low, high = dtype.raw_range()
    if not low <= raw <= high:
        raise CodecError(f"{raw} does not fit in {dtype} ({low:g} to {high:g})")
    return _big_endian_to_wire(struct.pack(">" + fmt, raw), order)


def to_engineering(raw: int | float | bool, scale: float, offset: float) -> int | float | bool:
    """Raw register value to the point's unit: raw * scale + offset.

    Unscaled integers stay integers: a 64-bit counter must not lose its last digits to a
    float conversion.
    """
    if isinstance(raw, bool) or (scale == 1 and offset == 0):
        return raw
    return raw * scale + offset


def to_raw(value: float | bool, dtype: DataType, scale: float, offset: float) -> int | float | bool:
    """The point's unit back to the raw value to write; integers are rounded to nearest."""
    if dtype is DataType.BOOL or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and scale == 1 and offset == 0:
        return value
    raw = (value - offset) / scale
    if not math.isfinite(raw):
        raise CodecError(f"{value} is not a finite number")
    return raw if dtype.is_float else round(raw)
