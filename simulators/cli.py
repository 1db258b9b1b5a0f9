"""The commands `edge-agent demo` and `edge-agent simulate`, which live with the simulators.

The runtime (`edge_agent`, `drivers`) never imports the simulators: `edge-agent` finds these
commands through the `edge_agent.commands` entry points in pyproject.toml, each naming one
object here that has the shape of `edge_agent.cli.Command`. This module imports only the
standard library and `edge_agent.cli` when it is loaded (every `edge-agent` run loads it to
list its commands); a command's modules are imported when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

from edge_agent.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, Command

__all__ = ["DEMO", "DEMO_PARK", "SIMULATE"]

DEMO_PARK = Path(__file__).resolve().parents[1] / "configs" / "scenarios" / "demo-park.yaml"
"""The three-factory demo park of a clone (scenarios are not part of the installed package)."""


class _Simulate:
    help = "run a scenario's simulated day with the real protocol stacks; write a report"
    epilog = (
        "examples:\n  edge-agent simulate configs/scenarios/demo-park.yaml\n"
        "  edge-agent simulate configs/scenarios/demo-park.yaml --hours 2 --seed 3\n"
        "  edge-agent simulate configs/scenarios/demo-park.yaml --in-process"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("scenario", type=Path, help="a scenario YAML file")
        parser.add_argument("--hours", type=float, help="override the scenario's duration")
        parser.add_argument("--seed", type=int, help="override the scenario's seed")
        parser.add_argument(
            "--out",
            type=Path,
            default=Path("reports"),
            help="folder for metrics.json, series-<factory>.csv and report.html (default reports/)",
        )
        parser.add_argument(
            "--in-process",
            action="store_true",
            help="run the agents' code with the plant in-process (no sockets, no broker "
            "needed): the same control, many times faster",
        )
        parser.add_argument(
            "--no-baselines",
            action="store_true",
            help="skip the baselines (no control, a classic limiter) and the hindsight bound",
        )

    def run(self, args: argparse.Namespace) -> int:
        return asyncio.run(_simulate(args))


class _Demo:
    help = "a simulated park + embedded broker (if none runs) + one agent per factory, live"
    epilog = (
        "examples:\n  edge-agent demo\n  edge-agent demo --duration 30\n"
        "  edge-agent demo --site configs/sites/demo-factory.yaml"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--scenario",
            type=Path,
            default=DEMO_PARK,
            help="the park to run (default: the three-factory demo park)",
        )
        parser.add_argument(
            "--site",
            type=Path,
            default=None,
            help="run one site file instead, e.g. configs/sites/demo-factory.yaml",
        )
        parser.add_argument(
            "--duration",
            type=float,
            default=None,
            help="stop after this many seconds (default: until Ctrl-C)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from .demo import run_demo, run_park_demo

        if args.site is not None:
            return asyncio.run(run_demo(args.site, duration_s=args.duration))
        return asyncio.run(run_park_demo(args.scenario, duration_s=args.duration))


SIMULATE: Command = _Simulate()
DEMO: Command = _Demo()


async def _simulate(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from .broker import BrokerUnavailable
    from .park import simulate
    from .scenario import load_scenario

    # One line per summary would bury the table: the report has them all.
    logging.getLogger("edge_agent.summariser").setLevel(logging.WARNING)
    if args.in_process:  # its summaries stay in the outboxes by design: no broker to send to
        logging.getLogger("edge_agent.agent").setLevel(logging.WARNING)
    scenario = load_scenario(args.scenario)  # a ConfigError is printed by main(), exit 2
    if args.hours is not None and not args.hours > 0:
        print(f"--hours must be more than 0; found {args.hours:g}", file=sys.stderr)
        return EXIT_CONFIG
    updates = {k: v for k, v in (("duration_h", args.hours), ("seed", args.seed)) if v is not None}
    scenario = scenario.model_copy(update=updates)
    out = args.out / scenario.name
    started = time.monotonic()
    try:
        with Progress() as bar:
            task = bar.add_task(f"{scenario.name}: {scenario.duration_h:g} h", total=1.0)
            metrics = await simulate(
                scenario,
                out,
                progress=lambda done: bar.update(task, completed=done),
                baselines=not args.no_baselines,
                in_process=args.in_process,
            )
    except BrokerUnavailable as exc:
        print(f"simulate needs Mosquitto for the park's broker: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # the --out folder cannot be written, say
        print(f"simulate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    wall = time.monotonic() - started
    for event in metrics["events"]:
        print(_describe(event))
    print(
        f"{'factory':<14} {'energy kWh':>11} {'peak 15-min kW':>15} {'cost VND':>13} "
        f"{'CO2 kg':>9} {'quality':>8}"
    )
    for name, f in metrics["factories"].items():
        print(
            f"{name:<14} {f['energy_kwh']:>11,.1f} {f['peak_window_demand_kw']:>15,.1f} "
            f"{f['cost_vnd']:>13,} {f['co2_kg']:>9,.1f} {(f['data_quality'] or 0):>8.1%}"
        )
    _print_score(metrics["score"])
    for outcome in metrics["demand_response"]:
        print(_delivered(outcome))
    for name, forecasts in metrics["forecasts"].items():
        print(f"forecast error at {name}: " + "; ".join(_error(k, e) for k, e in forecasts.items()))
    print(
        f"{scenario.duration_h:g} simulated hour{'s' if scenario.duration_h != 1 else ''} "
        f"in {wall:.0f} s "
        f"({scenario.duration_h * 3600 / wall:,.0f}x real time). Report: {out / 'report.html'}"
    )
    problems = [f"{n}: {p}" for n, found in metrics["bound_problems"].items() for p in found]
    if problems:  # a figure below its own bound is a bug in the bound or in the run
        print("A run beat the perfect-hindsight bound:", *problems, sep="\n  ", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _error(kind: str, error: dict[str, Any]) -> str:
    """`base_load MAE 12.3 kW (4.1 % of 300 kW) one slot ahead, 15.2 kW over the horizon`."""
    what = kind.replace("_", " ")
    if error["mae_kw"] is None:
        return f"{what} not scored yet"
    mean = error["mean_kw"] or 0.0
    share = f" ({error['mae_kw'] / mean:.1%} of {mean:,.0f} kW)" if mean > 0 else ""
    horizon = error["horizon_mae_kw"]
    ahead = f", {horizon:,.1f} kW over the plan's horizon" if horizon is not None else ""
    return f"{what} MAE {error['mae_kw']:,.1f} kW{share} one slot ahead{ahead}"


def _print_score(score: dict[str, Any]) -> None:
    """The score on the plant's ground truth: each kind of control, and the bound."""
    print(
        f"\n{'factory':<12} {'control':<10} {'peak kW':>8} {'cost VND':>12} {'saved':>7} "
        f"{'of bound':>8} {'over kW.min':>11} {'process':>8} {'missed':>6} {'switch':>6}"
    )
    for name, per in score.items():
        for mode in ("none", "limiter", "agent", "hindsight"):
            f = per.get(mode)
            if not isinstance(f, dict):
                continue
            process = f.get("process_breaches", sum((f.get("process_band") or {}).values()))
            bound = f.get("share_of_bound")
            peak = f.get("peak_window_demand_kw")
            print(
                f"{name:<12} {mode:<10} {'-' if peak is None else format(peak, ',.1f'):>8} "
                f"{f.get('cost_vnd', 0):>12,} "
                f"{(f.get('cost_saved_pct') or 0):>6.2f}% "
                f"{'-' if bound is None else format(bound, '.0%'):>8} "
                f"{f.get('over_limit_kw_min') or 0:>11,.1f} {process or 0:>8,.1f} "
                f"{(f.get('deadlines_missed') or 0):>6} {(f.get('switching') or 0):>6}"
            )


def _describe(event: dict[str, object]) -> str:
    """One line per scenario event, for the end of `simulate`."""
    when = str(event.get("at") or event.get("from"))[11:16]
    match event["kind"]:
        case "demand_response":
            answers = event["responses"]
            assert isinstance(answers, dict)
            said = ", ".join(
                f"{site} {a['status']}" + (f" ({a['reason']})" if a.get("reason") else "")
                for site, a in answers.items()
            )
            return f"{when} demand response {event['id']}: {said}"
        case "device_failure":
            until = str(event["until"])[11:16]
            return f"{when} {event['factory']}/{event['device']} silent until {until}"
        case _ if "in_process" in event:
            return f"{when} broker down until {str(event['until'])[11:16]} ({event['in_process']})"
        case _:
            return (
                f"{when} broker down until {str(event['until'])[11:16]}; "
                f"{event['waiting_when_back']} summaries waited in the outboxes"
            )


def _delivered(outcome: dict[str, Any]) -> str:
    """One line per demand-response request and factory: asked, answered, delivered."""
    asked, answer, truth = outcome["asked"], outcome["answer"], outcome["ground_truth"]
    target = (
        f"hold {asked['limit_kw']:,.0f} kW"
        if "limit_kw" in asked
        else f"cut {asked['reduction_kw']:,.0f} kW"
    )
    comply = answer.get("can_comply")
    said = answer.get("status", "?") + (
        "" if comply is None else ", can comply" if comply else ", cannot comply"
    )

    def kw(value: object) -> str:
        return "-" if value is None else f"{value:,.1f} kW"

    return (
        f"demand response {outcome['id']} to {outcome['factory']}: {target} "
        f"{asked['start'][11:16]}-{asked['end'][11:16]}, answered {said}; "
        f"the plant drew {kw(truth.get('agent_kw'))} against {kw(truth.get('none_kw'))} "
        f"without control (delivered {kw(truth.get('delivered_kw'))}; "
        f"short of the ask {kw(outcome.get('shortfall_kw'))})"
    )
