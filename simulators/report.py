"""What `simulate` writes beside its metrics for people to read: report.html, for a plant
manager, and a series-<factory>.csv of each factory's day (`window_series`).

The page, per factory: the day's figures, the score against the baselines and the
perfect-hindsight bound, the 15-min demand of every run against the limit (peak-tariff hours
and every demand-response window shaded, the bound's curve dashed when the bound gives it,
kW on a labelled axis), what the demand-response requests asked and got, and every action
of the day with its reason (the first few of each kind in view, all of them one click
away). One static HTML file with inline SVG, no script: it opens anywhere, and prints.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.energy.tariff import TariffConfig, band_at, price_at

from .park_run import WINDOW_S, Run
from .scenario import FactorySpec, Scenario

__all__ = ["report_page", "window_series"]

FIRST_OF_EACH_KIND = 5
"""Actions of each kind shown before the full list (which is folded)."""

_COLOURS = {"agent": "#1f5fa8", "none": "#999999", "limiter": "#e08a00", "hindsight": "#2a9d4b"}


def report_page(scenario: Scenario, metrics: dict[str, Any], runs: dict[str, Run]) -> str:
    """A page a plant manager can read: the day per factory, the score against the
    baselines and the bound, demand against the limit, and the actions with their reasons."""
    zone = ZoneInfo(scenario.timezone)
    main = runs["agent"]
    outcomes = metrics.get("demand_response", [])
    sections = [_summary_table(metrics), _score_table(metrics), _demand_response_table(outcomes)]
    for factory in scenario.factories:
        name = factory.name
        windows = [
            (datetime.fromisoformat(o["asked"]["start"]), datetime.fromisoformat(o["asked"]["end"]))
            for o in outcomes
            if o["factory"] == name
        ]
        sections.append(
            _demand_plot(
                name,
                factory.limit_kw,
                runs,
                zone,
                tariff=scenario.tariff_of(factory),
                bound_kw=_bound_demand(metrics["score"].get(name, {})),
                windows=windows,
            )
        )
        sections.append(_actions_table(name, main, zone))
    walls = ", ".join(f"{mode} {run.wall_s:.0f} s ({run.transport})" for mode, run in runs.items())
    how = (
        "The agent ran over Modbus TCP, OPC UA and MQTT on loopback"
        if main.transport == "protocols"
        else "The agent ran in-process (the same agent code, the plant read and written "
        "directly, no sockets)"
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{escape(scenario.name)}: simulated {scenario.duration_h:g} h</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:3px 9px;text-align:right}}
th:first-child,td:first-child{{text-align:left}}table{{border-collapse:collapse}}
tr:nth-child(even){{background:#f4f6f8}}.why{{text-align:left;font-size:90%}}
summary{{cursor:pointer;margin:.5em 0}}</style></head>
<body><h1>{escape(scenario.park)}: {escape(scenario.name)}, {scenario.duration_h:g} simulated
hours from {scenario.start.isoformat()}, seed {scenario.seed}</h1>
<p>{how}; the baselines ran the same plant models and seed in-process. Wall time: {walls}.</p>
{"".join(sections)}</body></html>"""


def _summary_table(metrics: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{n}</td><td>{f['energy_kwh']:,.1f}</td><td>{f['peak_window_demand_kw']:,.1f}"
        f"</td><td>{f['cost_vnd']:,}</td><td>{f['co2_kg']:,.1f}</td>"
        f"<td>{(f['data_quality'] or 0):.1%}</td></tr>"
        for n, f in metrics["factories"].items()
    )
    return (
        "<h2>The day, from the agents' own summaries</h2>"
        "<table><tr><th>factory</th><th>energy kWh</th><th>peak 15-min demand kW</th>"
        f"<th>cost VND</th><th>CO2 kg</th><th>data quality</th></tr>{rows}</table>"
    )


_SCORE_COLUMNS = (
    ("peak_window_demand_kw", "peak 15-min kW", ",.1f"),
    ("cost_vnd", "cost VND", ",.0f"),
    ("cost_saved_pct", "saved %", ".2f"),
    ("share_of_bound", "of the bound", ".0%"),
    ("peak_hours_kwh", "kWh in peak hours", ",.1f"),
    ("co2_kg", "CO2 kg", ",.1f"),
    ("over_limit_kw_min", "over limit kW·min", ",.1f"),
    ("process_breaches", "process breaches", ",.1f"),
    ("deadlines_missed", "deadlines missed", "d"),
    ("charging_shortfall_kwh", "charging short kWh", ",.1f"),
    ("min_on_off_breaches", "min on/off breaches", "d"),
    ("switching", "switchings", "d"),
)


def _score_table(metrics: dict[str, Any]) -> str:
    head = "".join(f"<th>{title}</th>" for _, title, _ in _SCORE_COLUMNS)
    rows = []
    labels = {
        "none": "no control",
        "limiter": "classic priority limiter",
        "agent": "the agent (limiter + planner)",
        "hindsight": "perfect-hindsight bound",
    }
    for name, per in metrics["score"].items():
        limit = per.get("limit_kw")
        rows.append(
            f"<tr><th colspan='{len(_SCORE_COLUMNS) + 1}' style='text-align:left'>{name}"
            f"{f', limit {limit:,.0f} kW' if limit else ''}</th></tr>"
        )
        for mode, label in labels.items():
            figures = per.get(mode)
            if not figures:
                continue
            cells = []
            for key, _, fmt in _SCORE_COLUMNS:
                value = figures.get(key)
                if key == "process_breaches" and "process_band" in figures:
                    value = sum(figures["process_band"].values())
                cells.append("-" if value is None else format(value, fmt))
            rows.append(f"<tr><td>{label}</td>{''.join(f'<td>{c}</td>' for c in cells)}</tr>")
    return (
        "<h2>Score on the plant's ground truth (15-min windows, EVN time-of-use tariff)</h2>"
        f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"
    )


def _demand_response_table(outcomes: list[dict[str, Any]]) -> str:
    """What each demand-response request asked, the answer, and what the plant shows."""
    if not outcomes:
        return ""

    def kw(value: object) -> str:
        return "-" if value is None else f"{value:,.1f}"

    rows = []
    for o in outcomes:
        asked, answer, truth = o["asked"], o["answer"], o["ground_truth"]
        target = (
            f"hold {asked['limit_kw']:,.0f} kW"
            if "limit_kw" in asked
            else f"cut {asked['reduction_kw']:,.0f} kW"
        )
        said = answer.get("status", "-")
        if answer.get("can_comply") is not None:
            said += ", can comply" if answer["can_comply"] else ", cannot comply"
        claimed = (o.get("claimed") or {}).get("delivered_kw")
        rows.append(
            f"<tr><td>{escape(o['id'])}</td><td>{escape(o['factory'])}</td>"
            f"<td>{target}, {asked['start'][11:16]}-{asked['end'][11:16]}</td>"
            f"<td class='why'>{escape(said)}</td><td>{kw(answer.get('flexibility_kw'))}</td>"
            f"<td>{kw(truth.get('none_kw'))}</td><td>{kw(truth.get('agent_kw'))}</td>"
            f"<td>{kw(truth.get('delivered_kw'))}</td><td>{kw(claimed)}</td>"
            f"<td>{kw(o.get('shortfall_kw'))}</td></tr>"
        )
    return (
        "<h2>Demand response: asked, answered, delivered (the plant's ground truth)</h2>"
        "<table><tr><th>event</th><th>factory</th><th>asked</th><th class='why'>answer</th>"
        "<th>flexibility kW</th><th>no control kW</th><th>agent kW</th><th>delivered kW</th>"
        "<th>agent's own claim kW</th><th>short of the ask kW</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _ticks(top: float) -> list[float]:
    """Round values from 0 to `top` for an axis, four to eight of them."""
    raw = top / 5 or 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(int(top // step) + 1)]


def _demand_plot(
    name: str,
    limit: float | None,
    runs: dict[str, Run],
    zone: ZoneInfo,
    *,
    tariff: TariffConfig,
    bound_kw: list[float] | None,
    windows: list[tuple[datetime, datetime]],
) -> str:
    record = runs["agent"].records[name]
    if not record.import_kwh:
        return ""
    width, height, left = 720, 190, 56
    series = _demand_kw(name, runs, bound_kw)
    top = max([max(v, default=0.0) for v in series.values()] + [limit or 0.0]) * 1.1 or 1.0
    step = width / max(1, len(record.import_kwh) - 1)
    first = record.window_starts[0]

    def y(kw: float) -> float:
        return height - kw / top * height

    def x(moment: datetime) -> float:
        return max(0.0, min(width, (moment - first).total_seconds() / WINDOW_S * step))

    lines = "".join(
        f"<polyline class='run-{mode}' fill='none' stroke='{_COLOURS.get(mode, '#000')}' "
        f"stroke-width='{2 if mode == 'agent' else 1}'"
        + (" stroke-dasharray='5 3'" if mode == "hindsight" else "")
        + " points='"
        + " ".join(f"{i * step:.1f},{y(kw):.1f}" for i, kw in enumerate(values))
        + "'/>"
        for mode, values in series.items()
    )
    peak = "".join(
        f"<rect x='{i * step:.1f}' y='0' width='{step:.1f}' height='{height}' fill='#fde2e2'/>"
        for i, start in enumerate(record.window_starts)
        if band_at(tariff, start, str(zone)) == "peak"
    )
    shaded = "".join(
        f"<rect class='dr-window' x='{x(start):.1f}' y='0' "
        f"width='{max(1.0, x(end) - x(start)):.1f}' height='{height}' fill='#7b61ff' "
        f"fill-opacity='0.18'><title>demand response {start.astimezone(zone):%H:%M}-"
        f"{end.astimezone(zone):%H:%M}</title></rect>"
        for start, end in windows
        if end > first and start < first + timedelta(seconds=WINDOW_S * len(record.window_starts))
    )
    limit_line = (
        ""
        if limit is None
        else f"<line class='limit' x1='0' x2='{width}' y1='{y(limit):.1f}' y2='{y(limit):.1f}' "
        f"stroke='#c00' stroke-dasharray='6 3'/>"
    )
    y_axis = "".join(
        f"<line x1='-4' x2='0' y1='{y(kw):.1f}' y2='{y(kw):.1f}' stroke='#666'/>"
        f"<text class='y-tick' x='-7' y='{y(kw) + 3:.1f}' font-size='10' text-anchor='end'>"
        f"{kw:,.0f}</text>"
        for kw in _ticks(top)
    )
    label = (
        f"<text class='y-label' transform='translate(-44,{height / 2:.0f}) rotate(-90)' "
        "font-size='11' text-anchor='middle'>demand, kW (15-min average)</text>"
    )
    every = max(1, len(record.window_starts) // 8)
    ticks = "".join(
        f"<text x='{i * step:.1f}' y='{height + 14}' font-size='10' text-anchor='middle'>"
        f"{start.astimezone(zone):%H:%M}</text>"
        for i, start in enumerate(record.window_starts)
        if i % every == 0
    )
    names = {"hindsight": "bound (dashed)"}
    legend = ", ".join(
        f"<span style='color:{_COLOURS[m]}'>{names.get(m, m)}</span>" for m in series
    )
    return (
        f"<h3>{escape(name)}: 15-min demand, local time; {legend}; the limit dashed red; "
        f"peak-tariff hours shaded red, demand-response windows violet</h3>"
        f"<svg width='{width + left + 10}' height='{height + 24}'>"
        f"<g transform='translate({left},4)'><rect width='{width}' height='{height}' "
        f"fill='none' stroke='#ccc'/>{peak}{shaded}{limit_line}{lines}{y_axis}{label}{ticks}"
        "</g></svg>"
    )


def _actions_table(name: str, run: Run, zone: ZoneInfo) -> str:
    """The first few actions of each kind with their reasons, then every action of the day
    (refused ones too, with why) in a folded table."""
    agent = run.agents.get(name)
    if agent is None or agent.controller is None:
        return ""
    history = sorted(agent.controller.history, key=lambda a: a.at)
    taken = [a for a in history if a.refused is None]
    kinds: dict[str, int] = {}
    for action in taken:
        kinds[action.kind] = kinds.get(action.kind, 0) + 1
    shown = [a for kind in kinds for a in [b for b in taken if b.kind == kind][:FIRST_OF_EACH_KIND]]

    def row(a: Any, *, refused: bool) -> str:
        cells = (
            f"<td>{a.at.astimezone(zone):%H:%M:%S}</td><td>{a.kind}</td><td>{escape(a.load)}</td>"
            f"<td>{escape(a.binding)}</td><td>{a.expected_vnd:,.0f}</td>"
            f"<td class='why'>{escape(a.reason)}</td>"
        )
        if refused:
            cells += f"<td class='why'>{escape(a.refused or '')}</td>"
        return f"<tr>{cells}</tr>"

    head = (
        "<tr><th>time</th><th>action</th><th>load</th><th>binding</th>"
        "<th>expected VND</th><th class='why'>why</th>"
    )
    first = "".join(row(a, refused=False) for a in sorted(shown, key=lambda a: a.at))
    every = "".join(row(a, refused=True) for a in history)
    counts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
    refusals = len(history) - len(taken)
    return (
        f"<h4>{escape(name)}: actions ({counts}"
        f"{f', {refusals} refused by the guard' if refusals else ''}); the first "
        f"{FIRST_OF_EACH_KIND} of each kind, with their reasons</h4>"
        f"<table class='first-actions'>{head}</tr>{first}</table>"
        f"<details class='all-actions'><summary>All {len(history)} actions of the day"
        f"</summary><table>{head}<th class='why'>refused</th></tr>{every}</table></details>"
    )


def window_series(
    scenario: Scenario, factory: FactorySpec, runs: dict[str, Run], score: dict[str, Any]
) -> str:
    """The factory's day as CSV, one row per 15-min window: its start (local ISO time),
    then each run's ground-truth demand (kW, the window's average) and cost (VND, at the
    price of the window's start); the bound's too when its result has a `demand_kw` list."""
    zone, tariff = scenario.timezone, scenario.tariff_of(factory)
    starts = runs["agent"].records[factory.name].window_starts
    hours = WINDOW_S / 3600
    columns = _demand_kw(factory.name, runs, _bound_demand(score))
    lines = ["window_start," + ",".join(f"{m}_kw,{m}_vnd" for m in columns)]
    for i, start in enumerate(starts):
        price = price_at(tariff, start, zone)[1]
        cells = [start.astimezone(ZoneInfo(zone)).isoformat()]
        for values in columns.values():
            if i < len(values):
                kw = values[i]
                cells += [f"{kw:.3f}", f"{max(0.0, kw) * hours * price:.0f}"]
            else:
                cells += ["", ""]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _bound_demand(score: dict[str, Any]) -> list[float] | None:
    """The bound's demand per window (kW), when its result says it."""
    demand = (score.get("hindsight") or {}).get("demand_kw")
    return [float(kw) for kw in demand] if isinstance(demand, list) else None


def _demand_kw(
    name: str, runs: dict[str, Run], bound_kw: list[float] | None
) -> dict[str, list[float]]:
    """Each run's ground-truth demand of factory `name` per billing window (kW, the
    window's average), and the bound's beside them when it gives one."""
    hours = WINDOW_S / 3600
    series = {
        mode: [kwh / hours for kwh in run.records[name].import_kwh] for mode, run in runs.items()
    }
    if bound_kw is not None:
        series["hindsight"] = bound_kw
    return series
