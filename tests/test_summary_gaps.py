"""Honest figures across gaps, on the summariser alone: a meter that reads a known constant
load every second of simulated time, and goes down or stops being read when told.

- a meter outage: the intervals without a good register reading have null energy (never
  0.0) with a reason, and the register's advance across the outage is the gap's, in no
  interval's energy or billing-window demand;
- a stop and a restart on the same SQLite outbox, with a site summary (control): every
  interval has its summaries, numbered without a hole, the missed ones null with a reason.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_agent.clock import SimClock
from edge_agent.config.loader import load_site
from edge_agent.config.schema import SiteConfig
from edge_agent.control.controller import ControlReport
from edge_agent.model import Reading
from edge_agent.northbound.outbox import MemoryOutbox, Outbox
from edge_agent.northbound.sqlite_outbox import SqliteOutbox
from edge_agent.summariser import NOT_RUNNING, Summariser
from tests.conftest import START

KW = 338.0
START_KWH = 12_500.0


def register(at: datetime) -> float:
    """The import register of a meter drawing KW since START."""
    return START_KWH + KW * (at - START).total_seconds() / 3600


def site(
    tmp_path: Path,
    *,
    interval_s: int,
    control: bool = False,
    stale_after_s: float | None = None,
    **outbox: object,
) -> SiteConfig:
    path = tmp_path / "site.yaml"
    settings = ", ".join(f"{k}: {v}" for k, v in outbox.items())
    stale = "" if stale_after_s is None else f", stale_after_s: {stale_after_s}"
    path.write_text(
        f"""
site: {{name: press-shop, park: test-park}}
summary: {{interval_s: {interval_s}, settle_s: 2, billing_window_s: 900}}
outbox: {{path: {tmp_path / "outbox.sqlite"}{", " + settings if settings else ""}}}
devices:
  - {{name: incomer, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1, port: 1502{stale}}}
  - name: chiller
    driver: opcua
    endpoint: opc.tcp://127.0.0.1:4841
    points:
      enable: {{node_id: "ns=2;s=E", writable: true}}
      power_kw: {{node_id: "ns=2;s=W"}}
      total_power_kw: {{node_id: "ns=2;s=P", role: active_power_kw, unit: kW}}
      import_energy_kwh: {{node_id: "ns=2;s=I", role: import_energy_kwh, unit: kWh}}
      export_energy_kwh: {{node_id: "ns=2;s=X", role: export_energy_kwh, unit: kWh}}
"""
        + (
            """
control:
  meter: incomer
  limit_kw: 400
  loads:
    - {name: chiller, device: chiller, rated_kw: 75}
"""
            if control
            else ""
        )
    )
    return load_site(path)


async def read_meters(
    clock: SimClock, summariser: Summariser, down: Callable[[datetime], bool]
) -> None:
    """Both meters, read every whole second (the incomer draws KW), unless `down`."""
    at = clock.now()
    while True:
        await clock.sleep_until(at)
        for device, kw in (("incomer", KW), ("chiller", KW / 4)):
            names = ("total_power_kw", "import_energy_kwh", "export_energy_kwh")
            if down(at) and device == "incomer":
                readings = [Reading.bad(f"{device}/{n}", at, "no answer") for n in names]
            else:
                kwh = START_KWH + kw * (at - START).total_seconds() / 3600
                values = (kw, kwh, 0.0)
                readings = [
                    Reading.good(f"{device}/{n}", v, at) for n, v in zip(names, values, strict=True)
                ]
            summariser.on_readings(readings)
        at += timedelta(seconds=1)


async def run(
    clock: SimClock,
    summariser: Summariser,
    until: datetime,
    *,
    down: Callable[[datetime], bool] = lambda at: False,
    graceful: bool = True,
) -> None:
    """Read and summarise until `until`; then stop (graceful), or abandon everything as a
    SIGKILL would (the tasks cancelled, nothing more stored)."""
    meters = asyncio.create_task(read_meters(clock, summariser, down))
    summarising = asyncio.create_task(summariser.run())
    clock.track(meters)
    clock.track(summarising)
    await clock.advance_to(until)
    meters.cancel()
    if graceful:
        summariser.stop()
    else:
        summarising.cancel()
    _, ended = await asyncio.gather(meters, summarising, return_exceptions=True)
    assert ended is None if graceful else isinstance(ended, asyncio.CancelledError)


def stored(outbox: MemoryOutbox) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in outbox._messages.values()]


def at(hh_mm_ss: str) -> datetime:
    h, m, s = (float(part) for part in hh_mm_ss.split(":"))
    return START.replace(hour=int(h), minute=int(m)) + timedelta(seconds=s)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_a_meter_outage_gives_null_intervals_and_the_gap_its_own_energy(
    tmp_path: Path, clock: SimClock
) -> None:
    """The tester's case: a meter down from 08:05:30 to 08:21:10, 5-minute intervals, a
    15-minute window. Before, the three intervals it missed were published as 0.0 kWh, the
    interval after it carried 20 minutes of energy, and the 08:15-08:30 window's demand was
    552 kW where the meter drew 338 kW all along."""
    outbox = MemoryOutbox()
    summariser = Summariser(site(tmp_path, interval_s=300), clock, outbox)
    await run(
        clock,
        summariser,
        at("08:45:03"),
        down=lambda moment: at("08:05:30") <= moment < at("08:21:10"),
    )
    incomer = [s for s in stored(outbox) if s["device"] == "incomer"]
    assert [s["interval_start"][11:16] for s in incomer] == [f"08:{m:02d}" for m in range(0, 45, 5)]
    energy = [s["energy_import_kwh"] for s in incomer]
    five_minutes = pytest.approx(KW * 5 / 60)
    assert energy == [five_minutes, None, None, None, None] + [five_minutes] * 4
    assert 0.0 not in energy
    assert [s["reason"] for s in incomer[1:5]] == [
        "no good reading of the import register at the end boundary",
        "no good reading of the import register at either boundary",
        "no good reading of the import register at either boundary",
        "no good reading of the import register at the start boundary",
    ]
    assert all(s["reason"] is None for s in incomer[:1] + incomer[5:])
    assert [s["cost_vnd"] for s in incomer[1:5]] == [None] * 4

    # The outage's energy is the gap's, with its span, in the summary where readings return.
    gaps = [s for s in incomer if s["gap_start"] is not None]
    assert len(gaps) == 1
    [gap] = gaps
    assert gap["interval_start"] == iso(at("08:20:00"))
    assert (gap["gap_start"], gap["gap_end"]) == (iso(at("08:05:00")), iso(at("08:25:00")))
    assert gap["gap_energy_import_kwh"] == pytest.approx(KW * 20 / 60)
    total = sum(e for e in energy if e is not None) + gap["gap_energy_import_kwh"]
    assert total == pytest.approx(register(at("08:45:00")) - register(at("08:00:00")))

    # No window's demand carries the outage: each is the meter's, or unknown.
    demand = {s["interval_end"][11:16]: s["billing_window_demand_kw"] for s in incomer}
    assert demand["08:05"] == pytest.approx(KW)
    assert demand["08:10"] is demand["08:15"] is None  # the window's end was not read
    assert demand["08:20"] is demand["08:25"] is demand["08:30"] is None  # nor its start
    assert [demand[m] for m in ("08:35", "08:40", "08:45")] == [pytest.approx(KW)] * 3
    assert max(d for d in demand.values() if d is not None) == pytest.approx(KW)


async def test_a_short_miss_at_a_boundary_still_uses_the_last_reading_before_it(
    tmp_path: Path, clock: SimClock
) -> None:
    """One failed poll on the boundary is no gap: the reading a second before stands for
    it, as before (it is not stale)."""
    outbox = MemoryOutbox()
    summariser = Summariser(site(tmp_path, interval_s=60), clock, outbox)
    await run(
        clock,
        summariser,
        at("08:02:03"),
        down=lambda moment: at("08:01:00") <= moment < at("08:01:02.5"),
    )
    incomer = [s for s in stored(outbox) if s["device"] == "incomer"]
    assert [s["energy_import_start_kwh"] for s in incomer] == [
        register(at("08:00:00")),
        register(at("08:00:59")),
    ]
    assert all(s["energy_import_kwh"] is not None for s in incomer)
    assert all(s["gap_start"] is None for s in incomer)


async def test_a_missed_boundary_poll_is_no_gap_even_under_a_short_stale_age(
    tmp_path: Path, clock: SimClock
) -> None:
    """`stale_after_s` shorter than the poll interval (the README's example polls the
    register every 5 s with 3 s): the reading one poll before a boundary whose poll failed
    still stands for it, up to two poll intervals old."""
    outbox = MemoryOutbox()
    summariser = Summariser(site(tmp_path, interval_s=60, stale_after_s=0.5), clock, outbox)
    await run(
        clock,
        summariser,
        at("08:02:03"),
        down=lambda moment: at("08:01:00") <= moment < at("08:01:02.5"),
    )
    incomer = [s for s in stored(outbox) if s["device"] == "incomer"]
    assert incomer[1]["energy_import_start_kwh"] == register(at("08:00:59"))
    assert all(s["reason"] is None for s in incomer)


@pytest.mark.parametrize("graceful", [True, False], ids=["graceful stop", "killed"])
async def test_a_stop_in_the_settle_time_and_a_restart_miss_no_interval(
    tmp_path: Path, clock: SimClock, graceful: bool
) -> None:
    """Stopped 0.5 s after the 08:03 boundary (in the 08:02-08:03 interval's settle time),
    started again at 08:05:30 on the same outbox file: every interval from 08:00 to 08:08
    has a summary of each device and of the site, numbered 1 to 24 without a hole. The
    08:02-08:03 interval is summarised by the stopping agent when it stops gracefully, and as
    `agent not running` by the next one when the first was killed."""
    config = site(tmp_path, interval_s=60, control=True)
    started = "2026-03-02T08:05:30.000Z"
    report = ControlReport("active", 400.0, "demand limit", {}, {}, [], [])

    def summariser(outbox: Outbox) -> Summariser:
        made = Summariser(config, clock, outbox)
        made.control = lambda: report
        return made

    first = SqliteOutbox(config.outbox.path)
    await run(clock, summariser(first), at("08:03:00.5"), graceful=graceful)
    first.close()
    await clock.advance_to(at("08:05:30"))
    second = SqliteOutbox(config.outbox.path)
    await run(clock, summariser(second), at("08:08:03"))
    second.close()

    with sqlite3.connect(config.outbox.path) as db:
        rows = db.execute("SELECT topic, payload FROM messages ORDER BY id").fetchall()
    summaries = [json.loads(payload) for _, payload in rows]
    assert [s["seq"] for s in summaries] == list(range(1, 25))
    for kind in ("incomer", "chiller", "site"):
        mine = [s for s in summaries if s.get("device", "site") == kind]
        assert [s["interval_start"][11:16] for s in mine] == [f"08:0{m}" for m in range(8)]
        stopped_in = "08:02"
        missed = {"08:03", "08:04"} | (set() if graceful else {stopped_in})
        for s in mine:
            start = s["interval_start"][11:16]
            if start in missed:
                assert s["energy_import_kwh"] is None
                assert s["reason"] == NOT_RUNNING
                if kind == "site":
                    assert s["control"] is None
                else:
                    assert (s["samples"], s["good_ratio"]) == (0, None)
            elif start == "08:05":
                assert s["energy_import_kwh"] is None
                assert s["reason"] == f"partial interval: the agent started at {started}"
            else:
                assert s["energy_import_kwh"] is not None, start
                assert s["reason"] is None
    site_summaries = [s for s in summaries if "device" not in s]
    assert all(s["control"] is None for s in site_summaries if s["reason"] == NOT_RUNNING)
    assert all(s["control"] is not None for s in site_summaries if s["reason"] != NOT_RUNNING)

    # The energy the agent did not see is the gap's: from the last boundary read before the
    # stop to the first read after the start, reported where readings came back.
    [partial] = [
        s
        for s in summaries
        if s.get("device") == "incomer" and s["interval_start"] == iso(at("08:05:00"))
    ]
    last_read = at("08:03:00") if graceful else at("08:02:00")
    assert (partial["gap_start"], partial["gap_end"]) == (iso(last_read), iso(at("08:06:00")))
    assert partial["gap_energy_import_kwh"] == pytest.approx(
        register(at("08:06:00")) - register(last_read)
    )


async def test_a_long_downtime_is_summarised_as_far_as_the_outbox_holds(
    tmp_path: Path, clock: SimClock
) -> None:
    """Down for an hour, with an outbox bounded to 10 messages: the last intervals before the
    restart are summarised as missing (half the outbox, 5 summaries: 2 intervals of 2
    devices), and the first of them says how many before it have no summary."""
    config = site(tmp_path, interval_s=60, max_messages=10)
    outbox = MemoryOutbox()
    await run(clock, Summariser(config, clock, outbox), at("08:01:03"))
    await clock.advance_to(at("09:01:00"))
    await run(clock, Summariser(config, clock, outbox), at("09:02:03"))
    incomer = [s for s in stored(outbox) if s["device"] == "incomer"]
    assert [s["interval_start"][11:16] for s in incomer] == ["08:00", "08:59", "09:00", "09:01"]
    assert incomer[1]["reason"] == (
        "agent not running; the 58 intervals before this one from 2026-03-02T08:01:00.000Z "
        "have no summary: more than the outbox holds"
    )
    assert incomer[2]["reason"] == NOT_RUNNING
