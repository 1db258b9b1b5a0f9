"""Scenario files: read like site files, so every mistake is named where it is written.

A bad case is a file in scenario_cases/ whose `# expect:` lines list every problem it must
report (a substring of the message, which starts with file:line:column). A new case needs
no new code.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge_agent.cli import main
from edge_agent.clock import SimClock
from edge_agent.config.loader import ConfigError
from simulators.equipment import BatchFurnace, TankPump
from simulators.events import BrokerOutageEvent, DemandResponseEvent, timeline
from simulators.factory import build_plant
from simulators.scenario import Scenario, load_scenario
from simulators.site import site_config

CASES = sorted((Path(__file__).parent / "scenario_cases").glob("*.yaml"))
DEMO = Path(__file__).parents[1] / "configs" / "scenarios" / "demo-park.yaml"
SCENARIOS = sorted(DEMO.parent.glob("*.yaml"))
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_scenario_reports_every_problem_with_its_place(case: Path) -> None:
    expected = re.findall(r"^# expect: (.+)$", case.read_text(), re.MULTILINE)
    assert expected, f"{case.name} has no '# expect:' line"
    with pytest.raises(ConfigError) as caught:
        load_scenario(case)
    reported = [str(p) for p in caught.value.problems]
    for message in expected:
        assert any(message in line for line in reported), (
            f"expected {message!r} among:\n" + "\n".join(reported)
        )
    assert len(reported) == len(expected), "\n".join(reported)


def test_simulate_exits_2_with_the_messages_and_no_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    case = Path(__file__).parent / "scenario_cases" / "bad_events.yaml"
    assert main(["simulate", str(case), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad_events.yaml:20:70: events[2].device" in err
    assert "did you mean 'incomer'?" in err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir()), "nothing is simulated from a bad file"


def test_a_missing_file_and_broken_yaml_are_located_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.yaml:1:1: no such file"):
        load_scenario(tmp_path / "nowhere.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nfactories: [\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml:3:1: invalid YAML"):
        load_scenario(broken)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_scenario_of_the_catalogue_loads(path: Path) -> None:
    scenario = load_scenario(path)
    for index, factory in enumerate(scenario.factories):
        build_plant(scenario, index, factory, SimClock(scenario.start))


def test_the_demo_park_has_its_three_events() -> None:
    scenario = load_scenario(DEMO)
    assert [e.kind for e in scenario.events] == [
        "device_failure",
        "broker_outage",
        "demand_response",
    ]


def test_event_times_are_local_times_of_day_from_the_start() -> None:
    """ "02:00" in a day from 08:00 is the next morning; what would begin after the end does
    not happen; an outage that would outlast the end is over at the end."""
    start = datetime(2026, 3, 2, 8, 0, tzinfo=ZONE)
    events: list[DemandResponseEvent | BrokerOutageEvent] = [
        BrokerOutageEvent.model_validate(
            {"at": "02:00", "kind": "broker_outage", "duration_min": 20}
        ),
        BrokerOutageEvent.model_validate(
            {"at": "07:59", "kind": "broker_outage", "duration_min": 5}
        ),
        DemandResponseEvent.model_validate(
            {
                "at": "16:30",
                "kind": "demand_response",
                "id": "dr",
                "duration_min": 60,
                "limit_kw": 9,
            }
        ),
        BrokerOutageEvent.model_validate(
            {"at": "08:00:30", "kind": "broker_outage", "duration_min": 1}
        ),
    ]
    end = datetime(2026, 3, 3, 2, 10, tzinfo=ZONE)
    steps = [
        (s.when.astimezone(ZONE).isoformat(), s.index, s.phase)
        for s in timeline(list(events), start=start, end=end, zone="Asia/Ho_Chi_Minh")
    ]
    assert steps == [
        ("2026-03-02T08:00:30+07:00", 3, "begin"),
        ("2026-03-02T08:01:30+07:00", 3, "end"),
        ("2026-03-02T16:30:00+07:00", 2, "begin"),
        ("2026-03-03T02:00:00+07:00", 0, "begin"),
        ("2026-03-03T02:10:00+07:00", 0, "end"),
    ]


SIZED = {
    "name": "sized",
    "park": "binh-duong-1",
    "start": "2026-03-02T00:00:00+07:00",
    "tariff": {"calendar": "evn-2026", "voltage": "110kv_and_above"},
    "factories": [
        {
            "name": "press-shop",
            "base_load_kw": 180,
            "limit_kw": 400,
            "voltage": "below_6kv",
            "machines": [
                {
                    "name": "pump-1",
                    "model": "tank-pump",
                    "params": {"tank_m3": 120, "rated_kw": 40},
                },
                {
                    "name": "furnace-1",
                    "model": "batch-furnace",
                    "params": {"batches_per_day": [6, 6]},
                },
                {
                    "name": "compressor-1",
                    "model": "air-compressor",
                    "load": {"priority": 35, "max_sheds_per_day": 12, "band": {"margin": 0.8}},
                },
                {"name": "chiller-1", "model": "process-chiller", "control": False},
            ],
        },
        {"name": "cold-store", "base_load_kw": 60},
    ],
}


def test_machine_params_win_over_the_seed_and_leave_the_other_draws_alone() -> None:
    scenario = Scenario.model_validate(SIZED)
    plain = scenario.model_copy(
        update={
            "factories": [
                scenario.factories[0].model_copy(
                    update={
                        "machines": [
                            m.model_copy(update={"params": {}})
                            for m in scenario.factories[0].machines
                        ]
                    }
                )
            ]
        }
    )
    sized = build_plant(scenario, 0, scenario.factories[0], SimClock(scenario.start)).machines
    drawn = build_plant(plain, 0, plain.factories[0], SimClock(plain.start)).machines
    pump, furnace = sized["pump-1"], sized["furnace-1"]
    assert isinstance(pump, TankPump)
    assert isinstance(furnace, BatchFurnace)
    assert (pump.tank_m3, pump.rated_kw) == (120.0, 40.0)
    assert isinstance(pump.rated_kw, float), "a whole number set where the field is a float"
    assert furnace.batches_per_day == (6, 6)
    other = drawn["pump-1"]
    assert isinstance(other, TankPump)
    assert pump.flow_m3_h == other.flow_m3_h, "what is not set is drawn as before"
    assert sized["compressor-1"] == drawn["compressor-1"]


def test_load_overrides_control_false_and_the_tariff_reach_the_site_file(tmp_path: Path) -> None:
    scenario = Scenario.model_validate(SIZED)
    factory = scenario.factories[0]
    plant = build_plant(scenario, 0, factory, SimClock(scenario.start))
    site = site_config(scenario, factory, plant, broker_port=1, work=tmp_path)
    assert site.control is not None
    loads = {load.name: load for load in site.control.loads}
    assert "chiller-1" not in loads, "control: false"
    assert loads["pump-1"].rated_kw == 40, "the rated power set in params"
    compressor = loads["compressor-1"]
    assert (compressor.priority, compressor.max_sheds_per_day) == (35, 12)
    assert compressor.band is not None
    assert (compressor.band.point, compressor.band.margin) == ("pressure_bar", 0.8)
    assert site.tariff.calendar == "evn-2026"
    assert site.tariff.voltage == "below_6kv", "the factory's own voltage"
    other = scenario.factories[1]
    assert scenario.tariff_of(other).voltage == "110kv_and_above"


def test_simulate_exits_2_on_a_bad_machine(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    case = Path(__file__).parent / "scenario_cases" / "bad_machines.yaml"
    assert main(["simulate", str(case), "--in-process", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "machines[furnace-1].model: unknown machine model 'batch-furnase'" in err
    assert "did you mean 'tank_m3'?" in err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())
