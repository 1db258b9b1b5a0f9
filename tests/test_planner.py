"""The read planner: fewest requests within the protocol's and the device's limits."""

from __future__ import annotations

import pytest

from drivers.modbus.planner import Span, Table, plan
from edge_agent.config.loader import load_modbus_model


def spans(*addresses: int, table: Table = Table.HOLDING, width: int = 2) -> list[Span]:
    return [Span(f"p{a}", table, a, width) for a in addresses]


def test_contiguous_points_are_one_request() -> None:
    [request] = plan(spans(0, 2, 4, 6))
    assert (request.start, request.count, len(request.spans)) == (0, 8, 4)


def test_gaps_are_filled_only_up_to_the_allowed_size() -> None:
    assert len(plan(spans(0, 10), max_gap=0)) == 2
    assert len(plan(spans(0, 10), max_gap=7)) == 2  # registers 2..9 are a gap of 8
    assert len(plan(spans(0, 10), max_gap=8)) == 1
    assert len(plan(spans(0, 11), max_gap=8)) == 2


def test_a_block_never_exceeds_the_maximum_per_read() -> None:
    requests = plan(spans(*range(0, 400, 2)))
    assert [r.count for r in requests] == [124, 124, 124, 28]
    assert all(r.count <= 125 for r in requests)
    assert sum(len(r.spans) for r in requests) == 200
    assert [r.count for r in plan(spans(*range(0, 40, 2)), max_registers=10)] == [10, 10, 10, 10]


def test_tables_are_never_mixed_and_bits_use_the_bit_limit() -> None:
    mixed = (
        spans(0, 2)
        + spans(0, 2, table=Table.INPUT)
        + [Span(f"c{a}", Table.COIL, a, 1) for a in range(0, 2000)]
    )
    requests = plan(mixed)
    assert [(r.table, r.count) for r in requests] == [
        (Table.COIL, 2000),
        (Table.HOLDING, 4),
        (Table.INPUT, 4),
    ]


def test_overlapping_points_share_a_request() -> None:
    [request] = plan(
        [
            Span("u32", Table.HOLDING, 10, 2),
            Span("hi", Table.HOLDING, 10, 1),
            Span("lo", Table.HOLDING, 11, 1),
        ]
    )
    assert (request.start, request.count) == (10, 2)


def test_a_point_wider_than_a_read_is_an_error() -> None:
    with pytest.raises(ValueError, match="more than 2"):
        plan(spans(0, width=4), max_registers=2)


def test_sdm630_catalogue_plan_is_two_requests() -> None:
    device = load_modbus_model("eastron-sdm630")
    requests = plan((p.span(n) for n, p in device.points.items()), max_gap=device.max_gap_registers)
    assert [(r.start, r.count) for r in requests] == [(0, 88), (342, 2)]
