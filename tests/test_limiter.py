"""The demand limiter and the guard, one control cycle at a time: inputs in, actions out."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.opcua.config import OpcUaDevice
from edge_agent.control.config import ControlConfig, LoadConfig, WindowConfig
from edge_agent.control.controller import Refusals
from edge_agent.control.guard import Guard
from edge_agent.control.limiter import DemandLimiter, LimiterInputs
from edge_agent.control.loads import Action, LoadState, Why
from edge_agent.control.window import Projection, WindowTracker
from edge_agent.model import PointId, Value

T0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 10:00 in Binh Duong, a window start


def load(name: str, **overrides: Any) -> LoadConfig:
    fields: dict[str, Any] = {
        "name": name,
        "device": name,
        "rated_kw": 50,
        "sheddable": True,
        "priority": 10,
        "min_on_s": 60,
        "min_off_s": 60,
        "max_off_s": 900,
        "heartbeat": "heartbeat",
    }
    return LoadConfig.model_validate(fields | overrides)


def control(*loads: LoadConfig, **overrides: Any) -> ControlConfig:
    fields: dict[str, Any] = {
        "mode": "active",
        "meter": "incomer",
        "limit_kw": 400,
        "target_share": 1.0,
        "restore_margin_kw": 10,
        "loads": [item.model_dump() for item in loads],
    }
    return ControlConfig.model_validate(fields | overrides)


def projection(power_kw: float, energy_kwh: float = 0.0, remaining_s: float = 900) -> Projection:
    length = 900
    projected = (energy_kwh + power_kw * remaining_s / 3600) / (length / 3600)
    return Projection(T0, energy_kwh, remaining_s, power_kw, projected)


def states(config: ControlConfig, **state: dict[str, Any]) -> list[LoadState]:
    out = []
    for item in config.loads:
        s = LoadState(item)
        for key, value in state.get(item.name, {}).items():
            setattr(s, key, value)
        out.append(s)
    return out


def step(config: ControlConfig, proj: Projection | None, loads: list[LoadState]) -> list[str]:
    inputs = LimiterInputs(T0, proj, config.limit_kw, 1833.0)
    return [f"{a.kind} {a.load}" for a in DemandLimiter(config).step(inputs, loads)]


LOW, MID, HIGH = load("low", priority=1), load("mid", priority=5), load("high", priority=9)
CRITICAL = load("press", priority=0, critical=True, sheddable=False)
OFF_AGO = T0 - timedelta(seconds=120)
SHED = {"on": False, "held_by": "limiter", "since": OFF_AGO}


@pytest.mark.parametrize(
    ("case", "loads", "proj", "state", "expected"),
    [
        ("under the limit: nothing to do", (LOW, MID), projection(300), {}, []),
        ("over by 30 kW: the lowest priority goes", (LOW, MID), projection(430), {}, ["shed low"]),
        (
            "over by 80 kW: two go, lowest first",
            (MID, LOW),
            projection(480),
            {},
            ["shed low", "shed mid"],
        ),
        ("a critical load is never shed", (CRITICAL, LOW), projection(520), {}, ["shed low"]),
        (
            "a load on for less than its minimum on time stays on",
            (LOW, MID),
            projection(430),
            {"low": {"since": T0 - timedelta(seconds=30)}},
            ["shed mid"],
        ),
        (
            "the window's early excess counts: power under the limit, energy over",
            (LOW,),
            projection(390, energy_kwh=80, remaining_s=300),
            {},
            ["shed low"],
        ),
        (
            "headroom: the most important shed load comes back first",
            (LOW, HIGH),
            projection(300),
            {"low": SHED, "high": SHED},
            ["restore high"],
        ),
        (
            "hysteresis: not enough headroom with the margin",
            (LOW,),
            projection(345),
            {"low": SHED},
            [],
        ),
        (
            "maximum off time: restored even when over",
            (LOW,),
            projection(450),
            {"low": SHED | {"since": T0 - timedelta(seconds=901)}},
            ["restore low"],
        ),
        (
            "minimum off time: not restored yet",
            (LOW,),
            projection(200),
            {"low": SHED | {"since": T0 - timedelta(seconds=10)}},
            [],
        ),
        (
            "no sheds left today",
            (LOW, MID),
            projection(430),
            {"low": {"sheds_today": 6, "sheds_on": T0.date()}},
            ["shed mid"],
        ),
        (
            "a load the plan holds off is not the limiter's",
            (LOW,),
            projection(300),
            {"low": {"on": False, "held_by": "plan"}},
            [],
        ),
        (
            "an unreachable load is left alone",
            (LOW, MID),
            projection(430),
            {"low": {"available": False}},
            ["shed mid"],
        ),
        ("meter unknown, hold: nothing new", (LOW,), None, {}, []),
        ("meter unknown, hold: what is shed stays shed", (LOW,), None, {"low": SHED}, []),
    ],
)
def test_limiter_cycle(
    case: str,
    loads: tuple[LoadConfig, ...],
    proj: Projection | None,
    state: dict[str, dict[str, Any]],
    expected: list[str],
) -> None:
    config = control(*loads)
    assert step(config, proj, states(config, **state)) == expected, case


BANDED = load(
    "compressor",
    band={"point": "pressure_bar", "minimum": 6.0, "margin": 0.2},
)


@pytest.mark.parametrize(
    ("pressure", "shed", "expected"),
    [
        (7.2, False, ["shed compressor"]),  # well inside the band: may be shed
        (6.3, False, []),  # within two margins of the minimum: kept running
        (None, False, []),  # pressure unknown: taken as at its limit
        (6.15, True, ["restore compressor"]),  # shed and near the minimum: back, over or not
        (6.8, True, []),
    ],
)
def test_process_band_outranks_the_limit(
    pressure: float | None, shed: bool, expected: list[str]
) -> None:
    config = control(BANDED)
    state = {"band_value": pressure} | (SHED if shed else {})
    assert step(config, projection(460), states(config, compressor=state)) == expected


@pytest.mark.parametrize(
    ("policy", "shed", "expected"),
    [("restore", True, ["restore low"]), ("shed", False, ["shed low"]), ("hold", True, [])],
)
def test_meter_unknown_policies(policy: str, shed: bool, expected: list[str]) -> None:
    config = control(LOW, on_meter_unknown=policy)
    assert step(config, None, states(config, low=SHED if shed else {})) == expected


def test_every_action_says_why() -> None:
    config = control(LOW)
    [action] = DemandLimiter(config).step(
        LimiterInputs(T0, projection(430), 400, 3398.0), states(config)
    )
    assert action.binding == "demand limit"
    assert "projected 430 kW" in action.reason
    assert "lowest priority" in action.reason
    assert action.projected_kw == 430
    assert action.limit_kw == 400
    assert action.priority == 1
    assert action.expected_kwh == pytest.approx(12.5)  # 50 kW for the 15 minutes left
    assert action.expected_vnd == round(12.5 * 3398)


# The window tracker -------------------------------------------------------------------------


def test_fixed_window_energy_from_the_register() -> None:
    tracker = WindowTracker(WindowConfig(length_s=900))
    start = T0
    for second in range(0, 601, 10):  # 360 kW, the register agreeing
        tracker.update(start + timedelta(seconds=second), 360.0, 1000 + 0.1 * second)
    p = tracker.projection(start + timedelta(seconds=600), 360.0)
    assert p.window_start == start
    assert p.energy_kwh == pytest.approx(60.0)
    assert p.projected_kw == pytest.approx(360.0)
    assert p.allowed_kw(400, 900) == pytest.approx(480.0)  # (100 - 60) kWh in 300 s


def test_a_register_that_jumps_is_not_believed() -> None:
    tracker = WindowTracker(WindowConfig(length_s=900))
    tracker.update(T0, 360.0, 1000.0)
    tracker.update(T0 + timedelta(seconds=10), 360.0, 5000.0)  # a wrap or a garbage read
    p = tracker.projection(T0 + timedelta(seconds=10), 360.0)
    assert p.energy_kwh == pytest.approx(1.0)


def test_sliding_window_remembers_the_last_length() -> None:
    tracker = WindowTracker(WindowConfig(length_s=900, kind="sliding"))
    for second in range(0, 1801, 10):
        kw = 600.0 if second < 900 else 200.0
        tracker.update(T0 + timedelta(seconds=second), kw, None)
    p = tracker.projection(T0 + timedelta(seconds=1800), 200.0)
    assert p.projected_kw == pytest.approx(200.0, rel=0.02)


# The guard ------------------------------------------------------------------------------------


@dataclass
class Plant:
    """Stands in for the drivers: what was written, in order."""

    writes: list[tuple[PointId, Value]] = field(default_factory=list)

    async def write(self, point: PointId, value: Value) -> None:
        self.writes.append((point, value))


def device(name: str, *, writable: bool = True) -> OpcUaDevice:
    return OpcUaDevice.model_validate(
        {
            "driver": "opcua",
            "name": name,
            "endpoint": "opc.tcp://127.0.0.1:4840",
            "points": {
                "enable": {"node_id": "ns=2;s=E", "writable": writable},
                "heartbeat": {"node_id": "ns=2;s=H", "writable": True},
                "power_kw": {"node_id": "ns=2;s=P"},
            },
        }
    )


def action(
    name: str, kind: Why, on: bool, at: datetime = T0, binding: str = "demand limit"
) -> Action:
    return Action(at, name, kind, on, f"{kind} {name}", binding, None, 400, 1833, 1, 0, 0)


async def test_guard_writes_then_enforces_min_times_and_rate() -> None:
    plant = Plant()
    config = control(LOW)
    guard = Guard(config, [device("low")], plant.write, advisory=False)
    done = await guard.execute(action("low", "shed", False))
    assert done.written
    assert plant.writes == [("low/enable", False)]
    again = await guard.execute(action("low", "restore", True, T0 + timedelta(seconds=30)))
    assert again.refused == "its minimum off time: 30 s of 60 s"
    later = await guard.execute(action("low", "restore", True, T0 + timedelta(seconds=61)))
    assert later.written
    assert plant.writes[-1] == ("low/enable", True)


async def test_guard_refuses_what_is_not_declared_writable() -> None:
    plant = Plant()
    guard = Guard(control(LOW), [device("low", writable=False)], plant.write, advisory=False)
    done = await guard.execute(action("low", "shed", False))
    assert done.refused == "low/enable is not declared writable"
    assert plant.writes == []


async def test_advisory_decides_and_writes_nothing() -> None:
    plant = Plant()
    guard = Guard(control(LOW), [device("low")], plant.write, advisory=True)
    done = await guard.execute(action("low", "shed", False))
    await guard.heartbeat()
    assert not done.written
    assert done.refused is None
    assert plant.writes == []
    assert guard.states["low"].held_by == "limiter"


async def test_override_holds_the_load_until_it_expires() -> None:
    plant = Plant()
    guard = Guard(control(LOW), [device("low")], plant.write, advisory=False)
    guard.overrides["low"] = (True, T0 + timedelta(minutes=10))
    held = await guard.execute(action("low", "shed", False))
    assert held.refused == "a manual override holds it on"
    free = await guard.execute(action("low", "shed", False, T0 + timedelta(minutes=11)))
    assert free.written


async def test_stop_returns_every_load_to_its_safe_state() -> None:
    plant = Plant()
    config = control(LOW, MID, load("oven", safe_state="off"))
    devices = [device("low"), device("mid"), device("oven")]
    guard = Guard(config, devices, plant.write, advisory=False)
    await guard.execute(action("low", "shed", False))
    actions = await guard.safe_state(T0 + timedelta(seconds=5))
    assert [(a.load, a.on, a.written) for a in actions] == [
        ("low", True, True),
        ("oven", False, True),
    ]
    assert plant.writes[-2:] == [("low/enable", True), ("oven/enable", False)]


async def test_a_lost_device_is_taken_as_back_in_its_safe_state() -> None:
    plant = Plant()
    guard = Guard(control(LOW), [device("low")], plant.write, advisory=False)
    await guard.execute(action("low", "shed", False))
    [lost] = guard.device_lost("low", T0 + timedelta(seconds=5))
    assert lost.kind == "safe-state"
    assert lost.binding == "device lost"
    assert not lost.written
    assert guard.states["low"].on
    assert guard.states["low"].held_by is None
    await guard.heartbeat()
    assert plant.writes == [("low/enable", False)]  # no heartbeat to a lost device


# Properties -----------------------------------------------------------------------------------

_load_states = st.fixed_dictionaries(
    {
        "on": st.booleans(),
        "held": st.sampled_from([None, "limiter", "plan"]),
        "age_s": st.floats(0, 2000),
        "power": st.one_of(st.none(), st.floats(0, 120)),
        "band": st.one_of(st.none(), st.floats(5, 8)),
        "sheds": st.integers(0, 8),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    specs=st.lists(
        st.tuples(st.booleans(), st.booleans(), st.integers(0, 20), st.booleans()),
        min_size=1,
        max_size=8,
    ),
    raw=st.lists(_load_states, min_size=8, max_size=8),
    power=st.one_of(st.none(), st.floats(0, 2000)),
    energy=st.floats(0, 200),
    remaining=st.floats(30, 900),
    fall_s=st.one_of(st.none(), st.floats(1, 7200)),
)
def test_limiter_never_breaks_a_rule(  # noqa: PLR0917 (hypothesis passes them by name)
    specs: list[tuple[bool, bool, int, bool]],
    raw: list[dict[str, Any]],
    power: float | None,
    energy: float,
    remaining: float,
    fall_s: float | None,
) -> None:
    """Whatever the state: never sheds a critical, unsheddable or held load, never one on for
    less than its minimum on time or out of sheds, never restores before the minimum off
    time unless the process or the maximum off time says so, never acts on a lost load."""
    loads = []
    for i, (critical, sheddable, priority, banded) in enumerate(specs):
        extra: dict[str, Any] = {"priority": priority, "critical": critical}
        extra["sheddable"] = sheddable and not critical
        if banded:
            extra["band"] = {"point": "pressure_bar", "minimum": 6.0, "margin": 0.2}
            extra["idle_share"] = 0.4  # a compressor: it idles unloaded
        loads.append(load(f"l{i}", **extra))
    config = control(*loads)
    current = []
    for item, r in zip(config.loads, raw, strict=False):
        s = LoadState(item)
        s.on = r["on"]
        s.held_by = None if r["on"] else r["held"]
        s.since = T0 - timedelta(seconds=r["age_s"])
        s.power_kw, s.band_value = r["power"], r["band"]
        s.sheds_on, s.sheds_today = T0.date(), r["sheds"]
        current.append(s)
    proj = None if power is None else projection(power, energy, remaining)
    fall = None if fall_s is None else (T0 + timedelta(seconds=fall_s), 1190.0)
    inputs = LimiterInputs(T0, proj, 400, 1833, next_price=fall, cheapest_vnd_per_kwh=1190)
    actions = DemandLimiter(config).step(inputs, current)
    by_name = {s.name: s for s in current}
    assert len({a.load for a in actions}) == len(actions)  # one action per load per cycle
    for a in actions:
        s = by_name[a.load]
        if a.kind == "shed":
            assert s.config.sheddable
            assert not s.config.critical
            assert s.on
            assert s.held_by is None
            assert s.held_for(T0) >= s.config.min_on_s
            assert s.sheds_left(T0.date()) > 0
        else:
            assert not s.on
            assert s.held_by == "limiter"
            if a.binding not in ("process band", "max off time"):
                assert s.held_for(T0) >= s.config.min_off_s


@pytest.mark.parametrize(
    ("slack_s", "state", "expected"),
    [
        # 900 s of max off plus a slot of margin: enough slack to be shed.
        (2000.0, {}, ["shed charger"]),
        # Not enough to stay off for a whole shed: the next load goes instead.
        (1500.0, {}, ["shed low"]),
        # Shed already, and its slack has run out: back on, whatever the demand.
        (600.0, SHED, ["restore charger", "shed low"]),
    ],
)
def test_a_charging_session_is_shed_only_with_the_slack_for_it(
    slack_s: float, state: dict[str, Any], expected: list[str]
) -> None:
    charger = load("charger", priority=0)
    config = control(charger, LOW)
    loads = states(config, charger=state)
    inputs = LimiterInputs(
        T0, projection(450), config.limit_kw, 1833.0, slack_s={"charger": slack_s}
    )
    assert [f"{a.kind} {a.load}" for a in DemandLimiter(config).step(inputs, loads)] == expected


CHILLER = load(
    "chiller",
    priority=20,
    max_off_s=2400,
    band={"point": "supply_temp_c", "maximum": 12.0, "margin": 1.0},
)
FALL = (T0 + timedelta(minutes=10), 1833.0)
"""The price falls from peak (3,398) to normal ten minutes from now."""


def coast(
    proj: Projection, state: dict[str, Any] | None = None, **overrides: Any
) -> tuple[DemandLimiter, list[LoadState], list[Action]]:
    fields = {"hold_s": 1200.0, "band_value": 8.0, "power_kw": 50.0} | (state or {})
    config = control(CHILLER, LOW, **overrides)
    loads = states(config, chiller=fields)
    limiter = DemandLimiter(config)
    inputs = LimiterInputs(T0, proj, config.limit_kw, 3398.0, next_price=FALL)
    return limiter, loads, limiter.step(inputs, loads)


def test_a_store_rides_through_to_a_price_fall() -> None:
    _, _, actions = coast(projection(200))
    assert [(a.kind, a.load, a.binding) for a in actions] == [("shed", "chiller", "tariff")]
    assert "falls from 3,398 to 1,833" in actions[0].reason
    # The work it moves: 50 kW for the 10 minutes to the fall, 1,565 VND/kWh cheaper.
    assert actions[0].expected_kwh == pytest.approx(50 * 600 / 3600, abs=0.01)
    assert actions[0].expected_vnd == round(50 * 600 / 3600 * (3398 - 1833))


def test_for_the_limit_a_store_that_holds_to_the_fall_goes_first_and_waits_for_it() -> None:
    # Over the limit: the chiller (priority 20) holds to the fall ten minutes off, so it
    # goes before `low` (priority 1), and is not restored for headroom before the fall.
    limiter, loads, actions = coast(projection(440))
    assert [(a.kind, a.load, a.binding) for a in actions] == [("shed", "chiller", "demand limit")]
    assert "made up after the fall" in actions[0].reason
    chiller = next(s for s in loads if s.name == "chiller")
    chiller.on, chiller.held_by, chiller.since = False, "limiter", T0
    later = T0 + timedelta(minutes=6)
    inputs = LimiterInputs(later, projection(100), 400.0, 3398.0, next_price=FALL)
    assert limiter.step(inputs, loads) == []


@pytest.mark.parametrize(
    ("case", "proj", "state", "overrides"),
    [
        ("the fall is further off than the store holds", projection(200), {"hold_s": 500.0}, {}),
        ("a store that holds less than five minutes", projection(200), {"hold_s": 200.0}, {}),
        ("no room for it to come back at its rated power", projection(360), {}, {}),
        ("its band variable is already near its limit", projection(200), {"band_value": 10.5}, {}),
        (
            "its last shed of the day is kept for the limit",
            projection(200),
            {"sheds_today": 5, "sheds_on": T0.date()},
            {},
        ),
        ("the site sheds stores for the limit alone", projection(200), {}, {"shift_stores": False}),
    ],
)
def test_a_store_does_not_coast(
    case: str, proj: Projection, state: dict[str, Any], overrides: dict[str, Any]
) -> None:
    assert coast(proj, state, **overrides)[2] == []


def test_a_coasting_store_is_restored_after_the_fall_not_before() -> None:
    limiter, loads, actions = coast(projection(200))
    for action in actions:
        state = next(s for s in loads if s.name == action.load)
        state.on, state.held_by, state.since = False, "limiter", OFF_AGO
    before = LimiterInputs(T0 + timedelta(minutes=5), projection(150), 400, 3398.0, next_price=FALL)
    assert limiter.step(before, loads) == []
    after = LimiterInputs(T0 + timedelta(minutes=10), projection(150), 400, 1833.0)
    assert [f"{a.kind} {a.load}" for a in limiter.step(after, loads)] == ["restore chiller"]


def test_a_coasting_store_near_its_band_comes_back_in_the_dear_hours() -> None:
    limiter, loads, _ = coast(projection(200))
    chiller = next(s for s in loads if s.name == "chiller")
    chiller.on, chiller.held_by, chiller.since, chiller.band_value = False, "limiter", OFF_AGO, 11.5
    inputs = LimiterInputs(T0 + timedelta(minutes=5), projection(150), 400, 3398.0, next_price=FALL)
    assert [(a.kind, a.binding) for a in limiter.step(inputs, loads)] == [
        ("restore", "process band")
    ]


@pytest.mark.parametrize(
    ("case", "low", "expected"),
    [
        (
            "shed 10 s ago, its own reading still shows it: the meter has not seen it yet",
            {
                "on": False,
                "held_by": "limiter",
                "since": T0 - timedelta(seconds=10),
                "power_kw": 50.0,
            },
            [],
        ),
        (
            "no power point: its rating counts until the meter has had the time",
            {"on": False, "held_by": "limiter", "since": T0 - timedelta(seconds=10)},
            [],
        ),
        (
            "its own reading shows it stopped: the meter's excess is another need",
            {
                "on": False,
                "held_by": "limiter",
                "since": T0 - timedelta(seconds=10),
                "power_kw": 0.0,
            },
            ["shed mid"],
        ),
        (
            "shed long enough ago that a meter still over means it is not enough",
            {
                "on": False,
                "held_by": "limiter",
                "since": T0 - timedelta(seconds=60),
                "power_kw": 50.0,
            },
            ["shed mid"],
        ),
    ],
)
def test_a_shed_the_meter_has_not_shown_yet_is_not_shed_for_again(
    case: str, low: dict[str, Any], expected: list[str]
) -> None:
    config = control(LOW, MID)
    assert step(config, projection(430), states(config, low=low)) == expected


RISE = (T0 + timedelta(minutes=40), 5000.0)
"""The price rises forty minutes from now: after a 900 s shed of a store and its making-up
(30 min), before the end of a session with 2,000 s of charging left and a shed's delay."""
NO_SHEDS_LEFT = {"sheds_today": 6, "sheds_on": T0.date()}


@pytest.mark.parametrize(
    ("case", "proj", "target_share", "mid", "binding", "peak", "expected"),
    [
        (
            "a session pushed past the rise is made up dearer: the next in priority goes first",
            projection(430),
            1.0,
            {},
            "demand limit",
            500.0,
            ["shed mid"],
        ),
        (
            "only the dear one is left: for the site's limit it is not shed, the bill outranks",
            projection(395),
            0.97,
            NO_SHEDS_LEFT,
            "demand limit",
            500.0,
            [],
        ),
        (
            "only the dear one is left: shed all the same against a peak the day has not had",
            projection(410),
            0.97,
            NO_SHEDS_LEFT,
            "demand limit",
            380.0,
            ["shed low"],
        ),
        (
            "only the dear one is left: an accepted demand-response event has it all the same",
            projection(395),
            0.97,
            NO_SHEDS_LEFT,
            "demand response dr-1",
            500.0,
            ["shed low"],
        ),
    ],
)
def test_a_dear_shed_is_made_only_against_a_new_peak(  # noqa: PLR0917 (pytest: by name)
    case: str,
    proj: Projection,
    target_share: float,
    mid: dict[str, Any],
    binding: str,
    peak: float,
    expected: list[str],
) -> None:
    config = control(LOW, MID, target_share=target_share)
    loads = states(config, mid=mid)
    inputs = LimiterInputs(
        T0,
        proj,
        config.limit_kw,
        1833.0,
        binding=binding,
        next_price=RISE,
        finish_s={"low": 2000.0},
        peak_today_kw=peak,
    )
    limiter = DemandLimiter(config)
    assert [f"{a.kind} {a.load}" for a in limiter.step(inputs, loads)] == expected
    if not expected:
        assert limiter.short_kw > 0.0  # the summary says the window cannot be held


def test_a_refusal_is_kept_once_while_the_same_rule_refuses_it() -> None:
    refusals = Refusals()
    decided = Action(
        at=T0,
        load="charger",
        kind="defer",
        on=False,
        reason="defer charger: planned later",
        binding="tariff",
        projected_kw=None,
        limit_kw=None,
        price_vnd_per_kwh=1833.0,
        priority=10,
        expected_kwh=0.0,
        expected_vnd=0.0,
    )
    refused = [
        dataclasses.replace(decided, refused=f"its minimum on time: {s} s of 120 s")
        for s in (40, 50, 60)
    ]
    assert [refusals.news(a) for a in refused] == [True, False, False]
    assert refusals.news(dataclasses.replace(decided, refused="written 2 s ago (rate limit)"))
    assert refusals.news(decided)  # done
    assert refusals.news(refused[0])  # refused again after it was done: news again


COMPRESSOR = load(
    "compressor",
    priority=30,
    rated_kw=55,
    max_off_s=180,
    idle_share=0.4,
    band={"point": "pressure_bar", "minimum": 6.0, "margin": 0.6},
)
UNLOADED = {"power_kw": 13.75, "band_value": 7.4}
"""Just unloaded at cut-out: a quarter of its rated power, doing no work."""


def idle_step(
    state: dict[str, Any], price: float = 1833.0, cheapest: float | None = 1190.0, **fields: Any
) -> list[Action]:
    config = control(LoadConfig.model_validate(COMPRESSOR.model_dump() | fields))
    inputs = LimiterInputs(
        T0, projection(200), config.limit_kw, price, cheapest_vnd_per_kwh=cheapest
    )
    return DemandLimiter(config).step(inputs, states(config, compressor=UNLOADED | state))


def test_a_load_running_idle_is_stopped_with_a_shed() -> None:
    [stop] = idle_step({})
    assert (stop.kind, stop.load, stop.binding) == ("shed", "compressor", "idle running")
    assert "runs idle at 13.8 kW (40% of its 55 kW or less)" in stop.reason
    # What it saves if it stays stopped for its maximum off time.
    assert stop.expected_kwh == pytest.approx(13.75 * 180 / 3600, abs=0.001)
    # On a tariff with one price all day, any hour is as good as another.
    assert [a.binding for a in idle_step({}, cheapest=None)] == ["idle running"]


@pytest.mark.parametrize(
    ("case", "state", "price", "fields"),
    [
        ("it runs loaded, doing work", {"power_kw": 55.0}, 1833.0, {}),
        ("its power cannot be read", {"power_kw": None}, 1833.0, {}),
        ("the tariff's cheapest hours, where a shed saves least", {}, 1190.0, {}),
        (
            "its last shed of the day is kept for the limit",
            {"sheds_today": 1},
            1833.0,
            {"max_sheds_per_day": 2},
        ),
        ("its pressure is near its band", {"band_value": 7.1}, 1833.0, {}),
        ("the site has not said it idles", {}, 1833.0, {"idle_share": None}),
        ("on for less than its minimum on time", {"since": T0 - timedelta(seconds=30)}, 1833.0, {}),
    ],
)
def test_an_idle_load_is_left_running(
    case: str, state: dict[str, Any], price: float, fields: dict[str, Any]
) -> None:
    assert idle_step({"sheds_on": T0.date()} | state, price, **fields) == []


def drifting_chiller(readings: list[tuple[float, float, float]]) -> LoadState:
    """A chiller's state after readings (seconds from T0, supply °C, kW)."""
    state = LoadState(CHILLER)
    for seconds, celsius, kw in readings:
        state.band_value, state.power_kw = celsius, kw
        state.observe_band(T0 + timedelta(seconds=seconds))
    return state


def test_a_store_learns_its_drift_while_it_draws_nothing() -> None:
    # Stopped by its own thermostat (standby 0.8 kW): the tank warms 0.1 K a minute.
    state = drifting_chiller([(0, 7.0, 0.8), (60, 7.1, 0.8), (120, 7.2, 0.8)])
    assert state.drift_per_s == pytest.approx(0.1 / 60)
    # Restore edge 11 °C (12 less its margin): 3.8 K to go at 0.1 K/min.
    assert state.band_hold_s() == pytest.approx(38 * 60)
    # Running, it cools: that is not the process's drift, and it breaks the stretch.
    running = drifting_chiller([(0, 7.0, 0.8), (60, 7.1, 0.8), (120, 6.9, 75.0), (180, 6.7, 75)])
    assert running.drift_per_s == pytest.approx(0.1 / 60)
    assert drifting_chiller([(0, 7.0, 75.0), (60, 6.8, 75.0)]).drift_per_s is None


def test_a_store_learns_its_refill_and_how_long_a_shed_takes_to_make_up() -> None:
    # Its own thermostat: off, the tank warms 0.1 K a minute; running flat out (50 kW
    # rated), it cools 0.05 K a minute net of the heat: the chiller has little to spare.
    state = drifting_chiller(
        [(0, 7.0, 0.8), (60, 7.1, 0.8), (120, 7.2, 0.8), (180, 7.15, 50.0), (240, 7.1, 50.0)]
    )
    assert state.drift_per_s == pytest.approx(0.1 / 60)
    assert state.refill_per_s == pytest.approx(-0.05 / 60)
    # Shed for 10 min from 7.1 °C: 8.1 °C when restored, 1 K to win back at 0.05 K/min.
    assert state.made_up_s(600) == pytest.approx(600 + 20 * 60)
    # Shed, it owes its store back to 7.1 °C; made up past it, it owes nothing.
    state.owe()
    state.on, state.held_by = False, "limiter"
    state.band_value = 8.0
    assert state.made_up_s(0) == pytest.approx(18 * 60)
    state.on, state.held_by, state.band_value = True, None, 7.05
    state.observe_band(T0 + timedelta(seconds=300))
    assert state.owed_level is None


def test_a_store_shed_for_the_limit_runs_again_in_time_to_be_made_up_before_a_rise() -> None:
    config = control(CHILLER, limit_kw=400)
    shed = {
        "on": False,
        "held_by": "limiter",
        "since": T0 - timedelta(minutes=10),
        "band_value": 8.0,
        "owed_level": 7.0,
        "drift_per_s": 0.1 / 60,
        "refill_per_s": -0.05 / 60,
    }
    # 1 K owed at 0.05 K/min: 20 minutes of running; the price rises in 15 (or in 40).
    for minutes, expected in ((15, ["restore chiller"]), (40, [])):
        inputs = LimiterInputs(
            T0,
            projection(450),
            config.limit_kw,
            1833.0,
            next_price=(T0 + timedelta(minutes=minutes), 3398.0),
        )
        actions = DemandLimiter(config).step(inputs, states(config, chiller=shed))
        assert [f"{a.kind} {a.load}" for a in actions] == expected
        assert all(a.binding == "tariff" for a in actions)


@pytest.mark.parametrize(
    ("celsius", "coasts"),
    [
        # 11 − 8 = 3 K at 0.1 K/min: 30 min, of which 80 % (24 min) counted; the fall is in 10.
        (8.0, True),
        # 11 − 9.8 = 1.2 K: 12 min, 9.6 counted: the band would bring it back before the fall.
        (9.8, False),
    ],
)
def test_a_store_rides_to_the_fall_on_the_drift_it_has_shown(celsius: float, coasts: bool) -> None:
    # No shed has shown its hold yet (hold_s None): the drift alone says how long it holds.
    state = {"hold_s": None, "band_value": celsius, "drift_per_s": 0.1 / 60}
    actions = coast(projection(200), state)[2]
    assert [(a.load, a.binding) for a in actions] == ([("chiller", "tariff")] if coasts else [])


@pytest.mark.parametrize(
    ("case", "power_kw", "energy_kwh", "expected"),
    [
        # 3 min left, the power now (450 kW) at the window's projection: the next window,
        # where the chiller comes back (15 min of hold) and makes up what it missed, would
        # be the higher one: no shed.
        ("the power rises into the next window", 450.0, 90.0, []),
        # The power has fallen (380 kW) under a window projected 476: the exchange of
        # 50 kW × 3 min between the two leaves the next one lower.
        ("the power has fallen", 380.0, 100.0, ["shed chiller"]),
    ],
)
def test_a_store_is_not_shed_to_come_back_into_a_higher_next_window(
    case: str, power_kw: float, energy_kwh: float, expected: list[str]
) -> None:
    config = control(CHILLER)
    state = {"band_value": 9.5, "drift_per_s": 0.1 / 60, "power_kw": 50.0}  # 900 s to 11 °C
    loads = states(config, chiller=state)
    assert loads[0].band_hold_s() == pytest.approx(900)
    assert step(config, projection(power_kw, energy_kwh, remaining_s=180), loads) == expected
