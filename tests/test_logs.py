"""Log lines name the site, device, unit and address; JSON parses; repeats are folded."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_site
from edge_agent.northbound.outbox import MemoryOutbox
from edge_agent.ops.logs import (
    ContextFilter,
    JsonFormatter,
    RepeatFilter,
    TextFormatter,
    current_site,
    setup_logging,
)
from simulators.ports import free_port


@pytest.fixture
def root_logging() -> Iterator[None]:
    """`setup_logging` replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
async def test_json_lines_about_a_dead_device_name_site_device_unit_and_address(
    tmp_path: Path, clock: SimClock
) -> None:
    stream = io.StringIO()
    setup_logging("INFO", "json", stream=stream, force=True)
    port = free_port()
    site = tmp_path / "site.yaml"
    site.write_text(f"""
site: {{name: press-shop, park: test-park}}
devices:
  - {{name: dead, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1, port: {port},
     unit: 7, timeout_s: 0.2, reconnect_initial_s: 1, reconnect_max_s: 4}}
""")
    agent = Agent(load_site(site), clock, outbox=MemoryOutbox(), publish=False)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(agent.run(stop))
        await agent.started.wait()
        await clock.advance(30)
        stop.set()

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines, "nothing was logged"
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= line.keys()
        assert line["site"] == "press-shop"  # from the agent's context, on every line
    about_dead = [line for line in lines if line.get("device") == "dead"]
    assert about_dead
    first = about_dead[0]
    assert first["level"] == "WARNING"
    assert first["logger"] == "edge_agent.polling"
    assert first["unit"] == 7
    assert first["address"] == f"127.0.0.1:{port}"
    assert "cannot connect" in first["msg"]
    # Attempts 2.. within the minute are folded into one line, not one per attempt.
    assert len(about_dead) < agent.pollers[0].stats.connection_failures


def _record(
    msg: str, *args: object, level: int = logging.WARNING, **extra: object
) -> logging.LogRecord:
    record = logging.LogRecord("edge_agent.polling", level, __file__, 1, msg, args, None)
    for name, value in extra.items():
        setattr(record, name, value)
    return record


def test_repeats_are_folded_with_a_count() -> None:
    now = [1000.0]
    folder = RepeatFilter(60, monotonic=lambda: now[0])
    template = "%s: no answer within %g s"

    assert folder.filter(_record(template, "dead", 0.2, device="dead"))
    passed = 0
    for _ in range(57):
        now[0] += 1.0
        passed += folder.filter(_record(template, "dead", 0.2, device="dead"))
    assert passed == 0
    # The same template with other values is another message: never folded into this one.
    assert folder.filter(_record(template, "dead", 0.5, device="dead"))
    assert folder.filter(_record("command %s rejected: %s", "c1", "bad limit", device="dead"))
    assert folder.filter(_record("command %s rejected: %s", "c2", "bad limit", device="dead"))
    assert folder.filter(_record(template, "dead", 0.2, device="dead", address=7))
    # Another device, the same text: its own key.
    assert folder.filter(_record(template, "other", 0.2, device="other"))
    # INFO is never folded.
    assert folder.filter(_record(template, "dead", 0.2, level=logging.INFO, device="dead"))

    now[0] = 1061.0
    record = _record(template, "dead", 0.2, device="dead")
    assert folder.filter(record)
    assert record.getMessage() == (
        "dead: no answer within 0.2 s (and 57 more like it in the last 60 s)"
    )
    # A new window opened: the next one is folded again, and one more after it says 1 time.
    now[0] += 1
    assert not folder.filter(_record(template, "dead", 0.2, device="dead"))
    now[0] += 60
    last = _record(template, "dead", 0.2, device="dead")
    assert folder.filter(last)
    assert last.getMessage().endswith("(and 1 more like it in the last 60 s)")


def test_json_formatter_carries_location_fields_and_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "drivers.opcua.driver",
            logging.ERROR,
            __file__,
            1,
            "%s %s: %s",
            ("oven", "zone_1_temp_c", "BadCertificateUntrusted"),
            sys.exc_info(),
        )
    record.device, record.node_id, record.endpoint = "oven", "ns=2;i=7", "opc.tcp://10.0.0.9:4840"
    document = json.loads(JsonFormatter().format(record))
    assert document["msg"] == "oven zone_1_temp_c: BadCertificateUntrusted"
    assert document["device"] == "oven"
    assert document["node_id"] == "ns=2;i=7"
    assert document["endpoint"] == "opc.tcp://10.0.0.9:4840"
    assert document["ts"].endswith("+00:00")
    assert "ValueError: boom" in document["exc"]
    assert "site" not in document


def test_text_lines_add_only_what_the_message_does_not_say() -> None:
    record = _record(
        "%s unit %d: no answer",
        "meter-3",
        3,
        site="press-shop",
        device="meter-3",
        unit=3,
        address="10.0.0.5:502",
    )
    line = TextFormatter().format(record)
    assert line.endswith("meter-3 unit 3: no answer [site=press-shop address=10.0.0.5:502]")


def test_the_site_comes_from_the_agents_context() -> None:
    token = current_site.set("paint-shop")
    try:
        record = _record("x")
        assert ContextFilter().filter(record)
        assert getattr(record, "site", None) == "paint-shop"
        named = _record("x", site="press-shop")
        ContextFilter().filter(named)
        assert getattr(named, "site", None) == "press-shop"
    finally:
        current_site.reset(token)


def test_a_fold_always_ends_with_its_count() -> None:
    """A burst then silence: the count comes when the log moves on after the window, and at
    a stop (`flush`) for a window still open; nothing folded is left unsaid."""
    now = [0.0]
    folds = RepeatFilter(60, monotonic=lambda: now[0])
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    keep = Keep()
    keep.addFilter(folds)
    logger = logging.getLogger("edge_agent.test_folds")
    logger.addHandler(keep)
    logger.propagate = False
    try:
        for _ in range(5):
            logger.warning("meter-1: no answer within 1 s")
            now[0] += 1
        now[0] = 100.0
        logger.warning("compressor-2: unit 4 refused the write")
        assert lines == [
            "meter-1: no answer within 1 s",
            "meter-1: no answer within 1 s (and 4 more like it in 60 s; none since)",
            "compressor-2: unit 4 refused the write",
        ]
        logger.warning("compressor-2: unit 4 refused the write")
        folds.flush()
        assert lines[-1] == (
            "compressor-2: unit 4 refused the write (and 1 more like it in 60 s; none since)"
        )
    finally:
        logger.removeHandler(keep)
        logger.propagate = True
