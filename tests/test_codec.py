"""Every type in every byte order: round trip, and the wire layout integrators see in manuals."""

from __future__ import annotations

import math

import pytest

from drivers.modbus.codec import (
    ByteOrder,
    CodecError,
    DataType,
    decode,
    encode,
    to_engineering,
    to_raw,
)

SAMPLES: dict[DataType, list[int | float | bool]] = {
    DataType.BOOL: [False, True],
    DataType.INT16: [-32768, -1, 0, 1234, 32767],
    DataType.UINT16: [0, 1, 0xABCD, 65535],
    DataType.INT32: [-(2**31), -123456, 0, 0x12345678, 2**31 - 1],
    DataType.UINT32: [0, 0x12345678, 2**32 - 1],
    DataType.INT64: [-(2**63), -1, 0x0123456789ABCDEF, 2**63 - 1],
    DataType.UINT64: [0, 0x0123456789ABCDEF, 2**64 - 1],
    DataType.FLOAT32: [0.0, -1.5, 230.25, 3.4028234663852886e38],
    DataType.FLOAT64: [0.0, -1.5, 12345.678901234, 1e300],
}


@pytest.mark.parametrize("order", list(ByteOrder))
@pytest.mark.parametrize("dtype", list(DataType))
def test_round_trip(dtype: DataType, order: ByteOrder) -> None:
    for value in SAMPLES[dtype]:
        registers = encode(value, dtype, order)
        assert len(registers) == dtype.registers
        assert all(0 <= r <= 0xFFFF for r in registers)
        assert decode(registers, dtype, order) == value


# 0x12345678 as the four byte orders put it on the wire.
WIRE_32 = {
    ByteOrder.ABCD: [0x1234, 0x5678],
    ByteOrder.CDAB: [0x5678, 0x1234],
    ByteOrder.BADC: [0x3412, 0x7856],
    ByteOrder.DCBA: [0x7856, 0x3412],
}


@pytest.mark.parametrize(("order", "wire"), WIRE_32.items())
def test_32_bit_wire_layout(order: ByteOrder, wire: list[int]) -> None:
    assert encode(0x12345678, DataType.UINT32, order) == wire
    assert decode(wire, DataType.UINT32, order) == 0x12345678


def test_64_bit_wire_layout() -> None:
    value = 0x0102030405060708
    assert encode(value, DataType.UINT64, ByteOrder.ABCD) == [0x0102, 0x0304, 0x0506, 0x0708]
    assert encode(value, DataType.UINT64, ByteOrder.CDAB) == [0x0708, 0x0506, 0x0304, 0x0102]
    assert encode(value, DataType.UINT64, ByteOrder.BADC) == [0x0201, 0x0403, 0x0605, 0x0807]
    assert encode(value, DataType.UINT64, ByteOrder.DCBA) == [0x0807, 0x0605, 0x0403, 0x0201]


def test_sdm630_voltage_as_the_meter_sends_it() -> None:
    # 230.0 V as IEEE-754 float32, high word first: 0x4366 0x0000
    assert decode([0x4366, 0x0000], DataType.FLOAT32, ByteOrder.ABCD) == 230.0


def test_16_bit_byte_swap() -> None:
    assert decode([0x3412], DataType.UINT16, ByteOrder.BADC) == 0x1234
    assert decode([0x1234], DataType.UINT16, ByteOrder.CDAB) == 0x1234


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (70000, DataType.UINT16),
        (-1, DataType.UINT32),
        (2**63, DataType.INT64),
        (1.5, DataType.INT16),
    ],
)
def test_values_that_do_not_fit_are_refused(value: float, dtype: DataType) -> None:
    with pytest.raises(CodecError):
        encode(value, dtype, ByteOrder.ABCD)


def test_wrong_register_count_is_refused() -> None:
    with pytest.raises(CodecError, match="needs 2 registers"):
        decode([1], DataType.FLOAT32, ByteOrder.ABCD)


def test_scale_and_offset_round_trip() -> None:
    raw = to_raw(21.5, DataType.INT16, scale=0.1, offset=-40.0)
    assert raw == 615
    assert to_engineering(raw, 0.1, -40.0) == pytest.approx(21.5)
    assert to_engineering(True, 0.1, 5) is True
    with pytest.raises(CodecError):
        to_raw(math.inf, DataType.FLOAT32, 1.0, 0.0)
