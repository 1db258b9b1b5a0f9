"""The payload contract a park's consumers rely on: every payload names its schema, the
Last Will claims no time it cannot know, and a 64-bit counter stays an integer."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from edge_agent.northbound.commands import CommandResponse
from edge_agent.northbound.payloads import DeviceSummary, LatestValue, SiteSummary, Status

AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("model", [DeviceSummary, SiteSummary, Status, CommandResponse])
def test_every_payloads_json_schema_requires_its_schema_field(model: type[BaseModel]) -> None:
    assert "schema" in model.model_json_schema(by_alias=True)["required"]


@pytest.mark.parametrize("value", [2**53 + 1, 2**63 - 1, 2**64 - 1, -(2**63)])
def test_a_64_bit_integer_stays_a_json_integer(value: int) -> None:
    text = LatestValue(value=value, quality="good", at=AT).model_dump_json()
    assert json.loads(text)["value"] == value
    assert str(value) in text


def test_floats_and_booleans_stay_what_they_are() -> None:
    assert json.loads(LatestValue(value=230.0, quality="good", at=AT).model_dump_json())[
        "value"
    ] == pytest.approx(230.0)
    assert "230.0" in LatestValue(value=230.0, quality="good", at=AT).model_dump_json()
    assert '"value":true' in LatestValue(value=True, quality="good", at=AT).model_dump_json()


def test_the_last_will_says_offline_with_no_time() -> None:
    will = Status(state="offline", park="p", site="s", agent_version="1", at=None)
    document = json.loads(will.model_dump_json(by_alias=True))
    assert document["at"] is None
    assert document["schema"] == "edge-agent/status/1"
