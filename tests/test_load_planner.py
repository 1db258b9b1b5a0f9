"""The load planner: deferrable loads over a day's slots on HiGHS, the rules behind it, and
the rolling horizon. Small problems, solved to optimality, so the plans are exact."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TypedDict, Unpack

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.control.planner import (
    DeferrableLoad,
    Plan,
    Planner,
    PlanProblem,
    StorageBand,
    as_released_cost,
    assess,
    rules,
    shifted,
    solve,
    violations,
)

SLOT_S = 900  # a slot of a 10 kW load is 2.5 kWh
K = 1000.0  # prices below are in thousands of VND/kWh: far above the solver's 100 VND abs gap
ROOMY = 30.0  # a time limit these problems never reach, so the plans do not depend on speed


class Terms(TypedDict, total=False):
    """The `PlanProblem` terms a test sets beside the price, loads and power profiles."""

    co2_kg_per_kwh: float | tuple[float, ...]
    co2_vnd_per_kg: float
    capacity_vnd_per_kw: float
    peak_so_far_kw: float
    export_allowed: bool
    shortfall_vnd_per_kwh: float


def problem(
    price: Sequence[float],
    *loads: DeferrableLoad,
    base: float | Sequence[float] = 0.0,
    pv: float | Sequence[float] = 0.0,
    limit: float | Sequence[float] = 1000.0,
    **extra: Unpack[Terms],
) -> PlanProblem:
    n = len(price)

    def per_slot(value: float | Sequence[float]) -> tuple[float, ...]:
        return (float(value),) * n if isinstance(value, int | float) else tuple(value)

    return PlanProblem(
        slot_s=SLOT_S,
        price_vnd_per_kwh=tuple(K * x for x in price),
        base_kw=per_slot(base),
        pv_kw=per_slot(pv),
        limit_kw=per_slot(limit),
        loads=loads,
        **extra,
    )


def on_slots(plan: Plan, name: str) -> list[int]:
    return [t for t, on in enumerate(plan.running[name]) if on]


def exact(p: PlanProblem) -> Plan:
    plan = solve(p, time_limit_s=ROOMY, mip_gap=1e-6)
    assert plan.status == "optimal"
    assert violations(p, plan) == []
    return plan


# --- Batches -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "batch", "earliest", "deadline", "start"),
    [
        ([5, 5, 1, 1, 1, 5, 5, 5], 3, 0, None, 2),
        ([1, 1, 5, 5, 5, 5, 1, 1], 2, 0, None, 0),
        ([1, 1, 5, 5, 5, 5, 1, 1], 2, 1, None, 6),  # the cheap pair at 0 is before earliest
        ([5, 5, 5, 4, 2, 1, 1, 1], 3, 0, 7, 4),  # the cheapest three end after the deadline
        ([3, 1, 3, 1, 3, 1, 3, 1], 2, 0, None, 0),  # every pair costs the same: the earliest
        ([9, 9, 9, 9, 1, 1, 1, 1], 4, 2, 6, 2),  # the only window, however dear
    ],
)
def test_a_batch_runs_once_in_its_cheapest_window(
    price: list[float], batch: int, earliest: int, deadline: int | None, start: int
) -> None:
    load = DeferrableLoad("oven", 10, batch_slots=batch, earliest=earliest, deadline=deadline)
    plan = exact(problem(price, load))
    assert on_slots(plan, "oven") == list(range(start, start + batch))
    assert plan.starts("oven") == [start]
    assert plan.shortfall_kwh == {}


def test_a_batch_is_never_split_around_a_peak() -> None:
    price = [1, 1, 9, 1, 1, 9, 9, 9]
    plan = exact(problem(price, DeferrableLoad("oven", 10, batch_slots=4)))
    assert len(plan.starts("oven")) == 1
    assert on_slots(plan, "oven") == [0, 1, 2, 3]


# --- Interruptible loads -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("energy_kwh", "min_run", "expected"),
    [
        (5.0, 1, [1, 6]),  # two slots, the two cheapest
        (6.0, 1, [1, 5, 6]),  # 2.4 slots: three
        (5.0, 2, [5, 6]),  # runs of two: the cheapest adjacent pair
        (5.0, 3, [4, 5, 6]),  # a run of three although two slots would do
        (10.0, 2, [0, 1, 5, 6]),
    ],
)
def test_an_interruptible_load_gets_its_energy_in_the_cheapest_runs(
    energy_kwh: float, min_run: int, expected: list[int]
) -> None:
    price = [3, 1, 8, 8, 4, 2, 1, 9]
    load = DeferrableLoad("pump", 10, energy_kwh=energy_kwh, min_run_slots=min_run)
    plan = exact(problem(price, load))
    assert on_slots(plan, "pump") == expected
    assert plan.shortfall_kwh == {}


# --- PV, the site limit ------------------------------------------------------------------


def test_pv_surplus_draws_a_load_to_it() -> None:
    price = [2.0] * 8
    pv = [0, 0, 0, 0, 0, 30, 30, 30]
    plan = exact(problem(price, DeferrableLoad("oven", 20, batch_slots=3), base=5, pv=pv))
    assert on_slots(plan, "oven") == [5, 6, 7]
    assert plan.cost_vnd == 0.0  # all of it from PV that would otherwise go unused


def test_exported_pv_earns_the_price_so_the_surplus_no_longer_decides() -> None:
    price = [1, 1, 1, 2, 2, 2, 2, 2]
    pv = [0, 0, 0, 0, 0, 30, 30, 30]
    p = problem(price, DeferrableLoad("oven", 20, batch_slots=3), pv=pv, export_allowed=True)
    assert on_slots(exact(p), "oven") == [0, 1, 2]
    assert on_slots(exact(dataclasses.replace(p, export_allowed=False)), "oven") == [5, 6, 7]


def test_the_site_limit_keeps_two_batches_apart() -> None:
    price = [1, 1, 1, 1, 5, 5, 5, 5]
    loads = [DeferrableLoad(f"oven-{i}", 50, batch_slots=2) for i in range(2)]
    plan = exact(problem(price, *loads, base=20, limit=80))
    assert not set(on_slots(plan, "oven-0")) & set(on_slots(plan, "oven-1"))
    assert plan.over_limit_kwh == 0.0
    assert set(on_slots(plan, "oven-0")) | set(on_slots(plan, "oven-1")) == {0, 1, 2, 3}


def test_the_cost_cap_holds_the_limit_only_by_moves_that_cost_nothing_more() -> None:
    """Released at once, two ovens run together over the limit in cheap slots; keeping them
    apart costs a dear slot. Capped at what the ovens cost run as released, the plan stays
    no dearer and goes over; uncapped, it pays the dear slot to hold the limit."""
    price = [1, 1, 5, 5, 5, 5, 5, 5]
    loads = [DeferrableLoad(f"oven-{i}", 50, batch_slots=2, deadline=4) for i in range(2)]
    free = problem(price, *loads, base=20, limit=80, shortfall_vnd_per_kwh=1e7)
    released = as_released_cost(free)
    assert released == pytest.approx(2 * 2 * 50 * 0.25 * K)  # both in slots 0-1
    held = exact(free)
    assert held.over_limit_kwh == 0.0
    assert held.cost_vnd > released
    capped = exact(dataclasses.replace(free, cost_cap_vnd=released + 1.0))
    assert capped.cost_vnd <= released + 1.0
    assert capped.over_limit_kwh > 0.0
    assert capped.shortfall_kwh == {}


def test_a_sequencers_batches_run_in_their_order_one_at_a_time() -> None:
    price = [5, 1, 1, 5, 5, 1, 1, 5]
    first = DeferrableLoad("furnace#1", 40, batch_slots=2, deadline=8)
    second = DeferrableLoad("furnace#2", 40, batch_slots=2, deadline=8, after="furnace#1")
    plan = exact(problem(price, first, second))
    assert on_slots(plan, "furnace#1") == [1, 2]
    assert on_slots(plan, "furnace#2") == [5, 6]
    greedy = rules(problem(price, first, second))
    assert violations(problem(price, first, second), greedy) == []
    # Out of order is a violation, whoever made the plan.
    swapped = assess(
        problem(price, first, second),
        {
            "furnace#1": [False] * 5 + [True, True, False],
            "furnace#2": [False, True, True] + [False] * 5,
        },
    )
    assert violations(problem(price, first, second), swapped) == [
        "furnace#2: starts before furnace#1 has ended"
    ]


def test_a_demand_response_event_moves_a_load_out_of_it() -> None:
    price = [1.0] * 8
    limit = [100, 100, 100, 100, 10, 10, 10, 10]
    load = DeferrableLoad("oven", 40, batch_slots=3, earliest=3)
    plan = exact(problem(price, load, limit=limit))
    # From slot 3 it would run into the event; the limit outranks its deadline.
    assert on_slots(plan, "oven") == []
    assert plan.over_limit_kwh == 0.0
    assert plan.shortfall_kwh == pytest.approx({"oven": 30.0})
    relaxed = exact(problem(price, dataclasses.replace(load, earliest=0), limit=limit))
    assert relaxed.over_limit_kwh == 0.0
    assert on_slots(relaxed, "oven") == [0, 1, 2]


def test_base_load_above_the_limit_still_gets_a_plan() -> None:
    price = [1, 1, 2, 2]
    p = problem(price, DeferrableLoad("pump", 10, energy_kwh=5), base=120, limit=100)
    plan = exact(p)
    assert plan.over_limit_kwh == pytest.approx(4 * 20 * 0.25)
    # The limit outranks a deadline: the pump would only add to the excess, so it waits.
    assert on_slots(plan, "pump") == []
    assert plan.shortfall_kwh == pytest.approx({"pump": 5.0})
    cheap_limit = dataclasses.replace(p, over_limit_vnd_per_kwh=10 * K)
    assert on_slots(exact(cheap_limit), "pump") == [0, 1]


def test_a_co2_price_moves_a_load_to_the_cleaner_slots() -> None:
    price = [2.0] * 6
    co2 = (0.9, 0.9, 0.9, 0.4, 0.4, 0.9)
    load = DeferrableLoad("oven", 20, batch_slots=2)
    assert on_slots(exact(problem(price, load, co2_kg_per_kwh=co2)), "oven") == [0, 1]
    weighted = problem(price, load, co2_kg_per_kwh=co2, co2_vnd_per_kg=1000.0)
    plan = exact(weighted)
    assert on_slots(plan, "oven") == [3, 4]
    assert plan.cost_vnd == pytest.approx(2 * K * 10)  # energy cost alone, CO2 not in it


def test_a_capacity_charge_flattens_the_peak() -> None:
    price = [1, 1, 1, 1, 1, 1, 1, 1]
    loads = [DeferrableLoad(f"oven-{i}", 50, batch_slots=2) for i in range(3)]
    p = problem(price, *loads, base=20, capacity_vnd_per_kw=1000.0, peak_so_far_kw=70)
    plan = exact(p)
    load_kw = [sum(50 * plan.running[f"oven-{i}"][t] for i in range(3)) for t in range(8)]
    assert max(load_kw) == 50


# --- Deadlines that cannot be met --------------------------------------------------------


def test_an_impossible_deadline_reports_the_shortfall() -> None:
    price = [1.0] * 8
    loads = (
        DeferrableLoad("pump", 10, energy_kwh=20, earliest=2, deadline=5),  # 3 slots: 7.5 kWh
        DeferrableLoad("oven", 10, batch_slots=6, earliest=4),  # 4 slots left in the day
    )
    plan = exact(problem(price, *loads))
    assert plan.shortfall_kwh == pytest.approx({"pump": 12.5, "oven": 15.0})
    assert on_slots(plan, "pump") == [2, 3, 4]
    assert on_slots(plan, "oven") == []


def test_a_higher_priority_load_gets_the_room_first() -> None:
    price = [1.0] * 4
    loads = (
        DeferrableLoad("low", 50, batch_slots=4, priority=10),
        DeferrableLoad("high", 50, batch_slots=4, priority=900),
    )
    plan = exact(problem(price, *loads, limit=50))
    assert plan.shortfall_kwh == pytest.approx({"low": 50.0})
    assert on_slots(plan, "high") == [0, 1, 2, 3]


# --- Storage bands -----------------------------------------------------------------------


def levels(load: DeferrableLoad, on: tuple[bool, ...]) -> list[float]:
    assert load.band is not None
    level, out = load.band.level, []
    for t, running in enumerate(on):
        level += load.band.gain_per_kwh * load.power_kw * SLOT_S / 3600 * running
        level -= load.band.draw_per_slot[t]
        out.append(level)
    return out


@pytest.mark.parametrize(("min_run", "expected"), [(1, [0, 1, 2, 8]), (2, [0, 1, 8, 9])])
def test_a_store_stays_in_band_filled_when_it_is_cheap(min_run: int, expected: list[int]) -> None:
    price = [1, 1, 1, 5, 5, 5, 5, 5, 1, 1, 5, 5]
    band = StorageBand(
        level=3.0, minimum=1.0, maximum=6.0, gain_per_kwh=0.4, draw_per_slot=(0.5,) * 12
    )
    load = DeferrableLoad("chiller", 10, band=band, min_run_slots=min_run)  # +1 per slot run
    plan = exact(problem(price, load))
    trace = levels(load, plan.running["chiller"])
    assert all(1.0 - 1e-9 <= level <= 6.0 + 1e-9 for level in trace)
    assert plan.band_breach == {"chiller": 0.0}
    assert on_slots(plan, "chiller") == expected  # only cheap slots, no more than needed


def test_a_store_that_cannot_keep_up_reports_its_breach() -> None:
    band = StorageBand(
        level=2.0, minimum=1.0, maximum=3.0, gain_per_kwh=0.4, draw_per_slot=(1.5,) * 6
    )
    plan = exact(problem([1.0] * 6, DeferrableLoad("chiller", 10, band=band)))
    assert all(plan.running["chiller"])
    assert plan.band_breach["chiller"] == pytest.approx(6 * 0.5 - 1.0)


# --- Rolling horizon ---------------------------------------------------------------------


def test_a_started_store_run_keeps_its_minimum_run_and_its_band() -> None:
    band = StorageBand(
        level=5.0, minimum=1.0, maximum=6.0, gain_per_kwh=0.4, draw_per_slot=(0.5,) * 8
    )
    load = DeferrableLoad("chiller", 10, band=band, min_run_slots=3, running_for=1)
    plan = exact(problem([9, 9, 9, 1, 1, 1, 1, 1], load))
    assert on_slots(plan, "chiller")[:2] == [0, 1]  # locked although the slots are dear
    assert plan.band_breach == {"chiller": 0.0}


def test_a_started_batch_runs_to_its_end_and_needs_nothing_more() -> None:
    price = [9, 9, 9, 1, 1, 1]
    load = DeferrableLoad("oven", 10, batch_slots=4, running_for=2)
    plan = exact(problem(price, load))
    assert on_slots(plan, "oven") == [0, 1]
    assert plan.shortfall_kwh == {}


def test_a_started_run_keeps_its_minimum_run() -> None:
    price = [9, 9, 9, 1, 1, 1]
    load = DeferrableLoad("pump", 10, energy_kwh=5, min_run_slots=4, running_for=1)
    plan = exact(problem(price, load))
    assert on_slots(plan, "pump") == [0, 1, 2]  # 3 more slots: 7.5 kWh, more than needed


def test_a_small_price_change_does_not_reshuffle_the_plan() -> None:
    price = [5.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 5.0] * 2
    loads = (
        DeferrableLoad("oven", 40, batch_slots=3),
        DeferrableLoad("pump", 20, energy_kwh=15, min_run_slots=2),
    )
    planner = Planner(time_limit_s=ROOMY, mip_gap=1e-6)
    first = planner.replan(problem(price, *loads), shift=0)
    assert on_slots(first, "oven") == [1, 2, 3]
    nudged = list(price)
    nudged[9] -= 0.2  # now slightly the cheapest slot of the day
    second = planner.replan(problem(nudged, *loads), shift=0)
    assert second.running == first.running
    fresh = exact(problem(nudged, *loads))  # without a plan to keep, it moves
    assert 9 in on_slots(fresh, "oven")


def test_a_replan_after_some_slots_keeps_the_shifted_plan() -> None:
    price = [3.0, 3.0, 3.0, 3.0, 1.0, 1.0, 3.0, 3.0, 2.0, 2.0]
    planner = Planner(time_limit_s=ROOMY, mip_gap=1e-6)
    first = planner.replan(problem(price, DeferrableLoad("oven", 40, batch_slots=2)), shift=0)
    assert first.starts("oven") == [4]
    later = problem([*price[2:], 3.0, 3.0], DeferrableLoad("oven", 40, batch_slots=2))
    again = planner.replan(later, shift=2)
    assert again.starts("oven") == [2]
    assert again.objective_vnd == pytest.approx(exact(later).objective_vnd)  # no churn paid


@pytest.mark.parametrize(
    ("shift", "slots", "expected"),
    [
        (0, 4, (True, False, True, True)),
        (2, 4, (True, True, False, False)),
        (1, 2, (False, True)),
        (9, 3, (False, False, False)),
    ],
)
def test_shifted_drops_the_past_and_pads_the_future_off(
    shift: int, slots: int, expected: tuple[bool, ...]
) -> None:
    plan = assess(
        problem([1.0] * 4, DeferrableLoad("pump", 10)), {"pump": [True, False, True, True]}
    )
    assert shifted(plan, shift, slots) == {"pump": expected}


@pytest.mark.parametrize("limit_s", [0.0, 1e-6])
def test_no_time_for_highs_still_gives_a_plan(limit_s: float) -> None:
    price = [3, 1, 8, 8, 4, 2, 1, 9]
    loads = (
        DeferrableLoad("pump", 10, energy_kwh=6, min_run_slots=2),
        DeferrableLoad("oven", 30, batch_slots=3, deadline=7),
    )
    p = problem(price, *loads)
    plan = solve(p, time_limit_s=limit_s)
    assert plan.status == "rules"
    assert violations(p, plan) == []
    assert plan.shortfall_kwh == {}
    planner = Planner(time_limit_s=ROOMY)
    planner.replan(p, shift=0)
    planner.time_limit_s = limit_s
    again = planner.replan(p, shift=0)
    assert again.status in {"last-plan", "rules"}
    assert violations(p, again) == []


def test_the_last_plan_survives_a_load_that_finished() -> None:
    price = [3, 1, 8, 8, 4, 2, 1, 9]
    pump = DeferrableLoad("pump", 10, energy_kwh=6, min_run_slots=2)
    oven = DeferrableLoad("oven", 30, batch_slots=3, deadline=7)
    planner = Planner(time_limit_s=ROOMY)
    first = planner.replan(problem(price, pump, oven), shift=0)
    planner.time_limit_s = 0.0
    again = planner.replan(problem(price, pump), shift=0)
    assert again.status in {"last-plan", "rules"}
    assert again.running == {"pump": first.running["pump"]}


def test_the_milp_is_never_worse_than_the_rules() -> None:
    price = [3, 1, 8, 8, 4, 2, 1, 9, 2, 2, 5, 1]
    loads = (
        DeferrableLoad("pump", 10, energy_kwh=12, min_run_slots=3),
        DeferrableLoad("oven", 30, batch_slots=3, deadline=10),
        DeferrableLoad("mixer", 20, batch_slots=2, earliest=3),
    )
    p = problem(price, *loads, base=10, pv=[0, 0, 0, 0, 20, 40, 40, 20, 0, 0, 0, 0], limit=50)
    assert exact(p).objective_vnd <= rules(p).objective_vnd + 1e-6


def test_assess_prices_an_operators_own_schedule() -> None:
    p = problem([1, 2], DeferrableLoad("pump", 10, energy_kwh=5))
    plan = assess(p, {"pump": [True, True]})
    assert plan.cost_vnd == pytest.approx(K * (2.5 * 1 + 2.5 * 2))
    assert plan.shortfall_kwh == {}


def test_inconsistent_lengths_are_a_caller_error() -> None:
    with pytest.raises(ValueError, match="base_kw"):
        PlanProblem(900, (1.0, 1.0), (0.0,), (0.0, 0.0), (1.0, 1.0), ())


# --- Properties --------------------------------------------------------------------------


@st.composite
def problems(draw: st.DrawFn) -> PlanProblem:
    slots = draw(st.integers(6, 14))
    price = draw(
        st.lists(st.sampled_from([1190.0, 1833.0, 3398.0]), min_size=slots, max_size=slots)
    )
    loads = []
    for i in range(draw(st.integers(1, 4))):
        power = draw(st.sampled_from([10.0, 25.0, 60.0]))
        earliest = draw(st.integers(0, slots - 1))
        deadline = draw(st.one_of(st.none(), st.integers(earliest, slots + 2)))
        running = draw(st.sampled_from([0, 0, 0, 1, 2]))
        kind = draw(st.sampled_from(["batch", "run", "store"]))
        if kind == "store":
            level = draw(st.sampled_from([0.5, 2.0, 3.5]))
            band = StorageBand(
                level=level, minimum=1.0, maximum=4.0, gain_per_kwh=1.0 / (power * 0.25),
                draw_per_slot=tuple(draw(st.sampled_from([0.2, 0.5, 0.9])) for _ in range(slots)),
            )  # fmt: skip
            loads.append(
                DeferrableLoad(
                    f"store-{i}", power, band=band, min_run_slots=draw(st.integers(1, 3)),
                    running_for=running,
                )
            )  # fmt: skip
        elif kind == "batch":
            batch = draw(st.integers(1, 5))
            loads.append(
                DeferrableLoad(
                    f"batch-{i}", power, batch_slots=batch, earliest=earliest,
                    deadline=deadline, running_for=running,
                )
            )  # fmt: skip
        else:
            loads.append(
                DeferrableLoad(
                    f"run-{i}", power, energy_kwh=draw(st.sampled_from([0.0, 5.0, 20.0, 60.0])),
                    earliest=earliest, deadline=deadline,
                    min_run_slots=draw(st.integers(1, 3)), running_for=running,
                )
            )  # fmt: skip
    return problem(
        price,
        *loads,
        base=draw(st.sampled_from([0.0, 30.0])),
        pv=draw(st.lists(st.sampled_from([0.0, 40.0]), min_size=slots, max_size=slots)),
        limit=draw(st.sampled_from([40.0, 100.0, 1000.0])),
    )


def check_hard_rules(p: PlanProblem, plan: Plan) -> None:
    assert violations(p, plan) == []
    slots = len(p.price_vnd_per_kwh)
    for load in p.loads:
        on = plan.running[load.name]
        assert len(on) == slots
        ran = [t for t, x in enumerate(on) if x]
        locked = 0
        if load.running_for:
            size = load.batch_slots if load.batch_slots is not None else load.min_run_slots
            locked = max(0, size - load.running_for)
        end = slots if load.deadline is None else load.deadline
        assert all(t < locked or load.earliest <= t < end for t in ran)
        if load.batch_slots is not None and not load.running_for and ran:
            assert ran == list(range(ran[0], ran[0] + load.batch_slots))
        if load.batch_slots is not None and not load.running_for and not ran:
            assert plan.shortfall_kwh[load.name] > 0
    served = [
        sum(load.power_kw * plan.running[load.name][t] for load in p.loads) for t in range(slots)
    ]
    assert all(kw <= sum(load.power_kw for load in p.loads) for kw in served)


@settings(max_examples=30, deadline=None)
@given(problems())
def test_any_plan_respects_windows_batches_and_runs(p: PlanProblem) -> None:
    plan = solve(p, time_limit_s=ROOMY)
    assert plan.status in {"optimal", "feasible"}
    check_hard_rules(p, plan)
    greedy = rules(p)
    check_hard_rules(p, greedy)
    assert plan.objective_vnd <= greedy.objective_vnd + 1e-6
