"""The park's commands read as strictly as a PLC reads its registers: every bad command of
the corpus is refused with its own reason and changes nothing; a good one acts."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_agent.clock import SimClock
from edge_agent.config.schema import SiteConfig
from edge_agent.northbound.command_store import CommandStore
from edge_agent.northbound.commands import METER_WAIT_S, Commands
from tests.conftest import START

NOW = START  # the simulated clock's start, so a running agent can take the same corpus
SOON = (NOW + timedelta(hours=1)).isoformat()


def site() -> SiteConfig:
    writable = {"node_id": "ns=2;s=E", "writable": True}
    return SiteConfig.model_validate(
        {
            "site": {"name": "cold-store", "park": "p"},
            "devices": [
                {
                    "name": "incomer",
                    "driver": "opcua",
                    "endpoint": "opc.tcp://h:1",
                    "points": {
                        "p": {"node_id": "ns=2;s=P", "role": "active_power_kw", "unit": "kW"}
                    },
                },
                {
                    "name": "chiller",
                    "driver": "opcua",
                    "endpoint": "opc.tcp://h:2",
                    "points": {"enable": writable, "power_kw": {"node_id": "ns=2;s=W"}},
                },
            ],
            "control": {
                "mode": "active",
                "meter": "incomer",
                "limit_kw": 500,
                "loads": [{"name": "chiller-1", "device": "chiller", "rated_kw": 75}],
            },
        }
    )


def dr(**fields: Any) -> dict[str, Any]:
    return {
        "type": "demand_response",
        "id": "dr-1",
        "site": "cold-store",
        "limit_kw": 400,
        "start": SOON,
        "duration_s": 900,
        **fields,
    }


def override(**fields: Any) -> dict[str, Any]:
    return {
        "type": "override",
        "id": "ov-1",
        "site": "cold-store",
        "device": "chiller",
        "state": "off",
        "until": SOON,
        **fields,
    }


def advisory(**fields: Any) -> dict[str, Any]:
    return {"type": "advisory", "id": "adv-1", "site": "cold-store", "advisory": True, **fields}


def raw(text: str) -> bytes:
    return text.encode()


BAD: list[tuple[str, str, object, str]] = [
    # (case, topic type, payload, the reason's words)
    ("not JSON", "demand_response", raw("{not json"), "Invalid JSON"),
    ("not an object", "demand_response", raw("[1, 2]"), "Input should be an object (got [1, 2])"),
    ("unknown type", "reboot", {"type": "reboot", "id": "x", "site": "cold-store"}, "tags"),
    ("no type", "advisory", {"id": "x", "site": "cold-store"}, "discriminator"),
    (
        "boolean limit",
        "demand_response",
        dr(limit_kw=True),
        "limit_kw: Input should be a valid number (got true)",
    ),
    (
        "string limit",
        "demand_response",
        dr(limit_kw="400"),
        'limit_kw: Input should be a valid number (got "400")',
    ),
    (
        "NaN limit",
        "demand_response",
        raw(json.dumps(dr(limit_kw=float("nan")))),
        "limit_kw: Input should be a finite number",
    ),
    (
        "infinite limit",
        "demand_response",
        raw(json.dumps(dr(limit_kw=float("inf")))),
        "limit_kw: Input should be a finite number",
    ),
    (
        "overflowing limit",
        "demand_response",
        raw(json.dumps(dr()).replace('"limit_kw": 400', '"limit_kw": 1e400')),
        "finite number",
    ),
    (
        "negative limit",
        "demand_response",
        dr(limit_kw=-5),
        "limit_kw: Input should be greater than 0",
    ),
    (
        "zero reduction",
        "demand_response",
        dr(limit_kw=None, reduction_kw=0),
        "reduction_kw: Input should be greater than 0",
    ),
    (
        "both targets",
        "demand_response",
        dr(reduction_kw=50),
        "exactly one of limit_kw and reduction_kw",
    ),
    ("no target", "demand_response", dr(limit_kw=None), "exactly one of limit_kw and reduction_kw"),
    (
        "string duration",
        "demand_response",
        dr(duration_s="600"),
        "duration_s: Input should be a valid integer",
    ),
    (
        "fractional duration",
        "demand_response",
        dr(duration_s=600.5),
        "duration_s: Input should be a valid integer",
    ),
    (
        "too short",
        "demand_response",
        dr(duration_s=10),
        "duration_s: Input should be greater than or equal to 60",
    ),
    ("too long", "demand_response", dr(duration_s=90_000), "less than or equal to 86400"),
    ("naive start", "demand_response", dr(start="2026-03-02T11:00:00"), "timezone info"),
    (
        "numeric start",
        "demand_response",
        dr(start=1772420400),
        "start: Input should be a valid datetime",
    ),
    (
        "a month ahead",
        "demand_response",
        dr(start=(NOW + timedelta(days=30)).isoformat()),
        "at most 7 days ahead",
    ),
    (
        "already over",
        "demand_response",
        dr(start=(NOW - timedelta(hours=2)).isoformat()),
        "already over",
    ),
    (
        "advisory payload on the DR topic",
        "demand_response",
        advisory(),
        "on the commands/demand_response topic",
    ),
    ("numeric id", "advisory", advisory(id=7), "id: Input should be a valid string (got 7)"),
    ("empty id", "advisory", advisory(id=""), "id: String should have at least 1 character"),
    (
        "string boolean",
        "advisory",
        advisory(advisory="true"),
        'advisory: Input should be a valid boolean (got "true")',
    ),
    (
        "number as boolean",
        "advisory",
        advisory(advisory=1),
        "advisory: Input should be a valid boolean (got 1)",
    ),
    ("unknown field", "advisory", advisory(extra=1), "extra: Extra inputs are not permitted"),
    (
        "unknown device",
        "override",
        override(device="boiler-9"),
        "device 'boiler-9' carries no load",
    ),
    (
        "device without loads",
        "override",
        override(device="incomer"),
        "device 'incomer' carries no load the agent controls; devices with loads: chiller",
    ),
    (
        "unknown state",
        "override",
        override(state="halfway"),
        "state: Input should be 'on' or 'off'",
    ),
    ("boolean state", "override", override(state=False), "state: Input should be 'on' or 'off'"),
    (
        "ended override",
        "override",
        override(until=(NOW - timedelta(minutes=1)).isoformat()),
        "has already passed",
    ),
    (
        "override for a month",
        "override",
        override(until=(NOW + timedelta(days=30)).isoformat()),
        "at most 7 days",
    ),
]


@pytest.mark.parametrize(("case", "topic", "payload", "reason"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_command_is_refused_with_its_own_reason_and_changes_nothing(
    case: str, topic: str, payload: object, reason: str
) -> None:
    commands = Commands(site())
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = commands.handle(body, NOW, topic)
    assert response is not None, case
    assert response.status == "rejected"
    assert response.reason is not None
    assert reason in response.reason, response.reason
    assert commands.inputs.demand_response == {}
    assert commands.inputs.overrides == {}
    assert not commands.inputs.advisory


def test_the_corpus_has_a_distinct_reason_for_every_case() -> None:
    commands = Commands(site())
    reasons = set()
    for _, topic, payload, _ in BAD:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        response = commands.handle(body, NOW, topic)
        assert response is not None
        assert response.reason is not None
        reasons.add(response.reason)
    assert len(BAD) >= 25
    assert len(reasons) >= len(BAD) - 3  # a few cases share a cause (two infinities)


def test_good_commands_act_and_an_override_names_the_loads_it_holds() -> None:
    commands = Commands(site())
    accepted = [
        commands.handle(json.dumps(body).encode(), NOW, topic)
        for topic, body in (
            ("demand_response", dr(limit_kw=400.5)),
            ("override", override()),
            ("advisory", advisory()),
        )
    ]
    assert [r.status if r else None for r in accepted] == ["accepted"] * 3
    assert accepted[1] is not None
    assert accepted[1].detail is not None
    assert "holds chiller-1 off until" in accepted[1].detail
    assert commands.inputs.demand_response["dr-1"].limit_kw == 400.5
    assert commands.inputs.overrides["chiller"].state == "off"
    assert commands.inputs.advisory is True


def test_another_sites_command_gets_no_answer_even_when_it_is_malformed() -> None:
    commands = Commands(site())
    assert commands.handle(json.dumps(advisory(site="other")).encode(), NOW, "advisory") is None
    bad = advisory(site="other", advisory="yes")
    assert commands.handle(json.dumps(bad).encode(), NOW, "advisory") is None


def test_accepted_commands_outlive_a_restart_and_ended_ones_are_dropped(tmp_path: Path) -> None:
    """The store is written when a command is accepted, so a SIGKILL right after the answer
    loses nothing: the next process applies it again, and a repeat of it (a retained
    message, a park that resends) is answered again but never applied twice."""
    store = CommandStore(tmp_path / "state" / "commands.json")
    first = Commands(site(), store)
    first.restore(NOW)
    later = (NOW + timedelta(hours=3)).isoformat()
    for topic, body in (
        ("demand_response", dr(start=later)),
        ("demand_response", dr(id="dr-2", duration_s=600, start=NOW.isoformat())),
        ("override", override(until=later)),
        ("advisory", advisory()),
    ):
        answer = first.handle(json.dumps(body).encode(), NOW, topic)
        assert answer is not None
        assert answer.status == "accepted", answer.reason

    restarted = Commands(site(), store)
    restarted.restore(NOW + timedelta(minutes=20))  # dr-2 (10 minutes) is over by then
    assert set(restarted.inputs.demand_response) == {"dr-1"}
    assert restarted.inputs.overrides["chiller"].id == "ov-1"
    assert restarted.inputs.advisory is True

    again = restarted.handle(
        json.dumps(dr(start=later)).encode(), NOW + timedelta(minutes=21), "demand_response"
    )
    assert again is not None
    assert again.status == "accepted"
    assert again.detail is not None
    assert "not applied again" in again.detail
    reused = restarted.handle(
        json.dumps(dr(start=later, limit_kw=300)).encode(), NOW, "demand_response"
    )
    assert reused is not None
    assert reused.reason == "id 'dr-1' was already used for another command"
    assert restarted.inputs.demand_response["dr-1"].limit_kw == 400


def test_an_unreadable_store_is_set_aside_and_said(tmp_path: Path) -> None:
    path = tmp_path / "commands.json"
    path.write_text("{half a file")
    commands = Commands(site(), CommandStore(path))
    commands.restore(NOW)
    assert commands.inputs.demand_response == {}
    assert (tmp_path / "commands.json.bad").exists()


async def test_a_demand_response_request_waits_for_the_first_meter_reading() -> None:
    """A retained request is delivered the moment the agent subscribes, before the incomer
    has been read: it is assessed once the demand is known, or after METER_WAIT_S."""
    clock = SimClock(NOW)
    commands = Commands(site())
    assessed: list[datetime] = []

    def assess(command: object, now: datetime) -> tuple[bool, float, str]:
        assessed.append(now)
        return True, 80.0, "can comply"

    commands.assess = assess
    commands.meter_known = asyncio.Event()
    body = json.dumps(dr()).encode()
    async with asyncio.TaskGroup() as group:
        first = group.create_task(commands.answer(body, clock, "demand_response"))
        await clock.advance(5)
        assert not first.done()
        commands.meter_known.set()
        answer = await first
    assert answer is not None
    assert answer.can_comply is True
    assert assessed == [NOW + timedelta(seconds=5)]

    late = Commands(site())
    late.assess = assess
    late.meter_known = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        second = group.create_task(late.answer(body, clock, "demand_response"))
        await clock.advance(METER_WAIT_S)
        assert (await second) is not None
    assert assessed[-1] == NOW + timedelta(seconds=5 + METER_WAIT_S)


def test_a_retained_command_accepted_before_a_restart_is_not_answered_again(
    tmp_path: Path,
) -> None:
    """After a restart the broker hands the retained command over again: it is in force
    (restored from the store) and was answered once, when it was accepted."""
    store = CommandStore(tmp_path / "commands.json")
    before = Commands(site(), store)
    body = json.dumps(dr()).encode()
    first = before.handle(body, NOW, "demand_response", retained=True)
    assert first is not None
    assert first.status == "accepted"
    after = Commands(site(), store)
    after.restore(NOW + timedelta(seconds=5))
    assert after.handle(body, NOW + timedelta(seconds=6), "demand_response", retained=True) is None
    assert set(after.inputs.demand_response) == {"dr-1"}
