"""Change reporting: deadbands hold back repeats; quality changes always get through."""

from __future__ import annotations

from datetime import timedelta

from edge_agent.changes import ChangeFilter, Deadband
from edge_agent.model import Reading
from tests.conftest import START


def run(deadband: Deadband | None, values: list[float | None]) -> list[float | None]:
    news: list[Reading] = []
    changes = ChangeFilter({"d/p": deadband} if deadband else {})
    changes.subscribe(news.extend)
    for second, value in enumerate(values):
        at = START + timedelta(seconds=second)
        reading = (
            Reading.bad("d/p", at, "no answer") if value is None else Reading.good("d/p", value, at)
        )
        changes.on_readings([reading])
    return [r.value for r in news]


def test_absolute_deadband() -> None:
    assert run(Deadband(absolute=0.5), [10, 10.2, 10.4, 10.6, 10.1, 9.9]) == [10, 10.6, 9.9]


def test_percent_deadband_is_of_the_last_reported_value() -> None:
    assert run(Deadband(percent=5), [100, 104, 105.5, 110, 111]) == [100, 105.5, 111]


def test_without_a_deadband_every_change_of_value_is_news() -> None:
    assert run(None, [1, 1, 2, 2, 1]) == [1, 2, 1]


def test_quality_changes_are_always_news() -> None:
    assert run(Deadband(absolute=100), [10, None, None, 10, 11]) == [10, None, 10]
