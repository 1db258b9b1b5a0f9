"""The `edge-agent` command.

Exit codes: 0 success; 1 the agent failed at run time; 2 the configuration or the command
line is wrong (every problem is printed, no traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from drivers.modbus.config import ModbusDevice
from drivers.modbus.driver import plan_groups
from drivers.modbus.planner import Table
from drivers.opcua.config import OpcUaDevice
from drivers.registry import modbus_lines

from .clock import SystemClock
from .config.loader import ConfigError, load_site
from .config.schema import SiteConfig
from .model import count
from .ops.logs import end_folds, setup_logging

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130
PID_FILE_NAME = "edge-agent.pid"
DEMO_PARK = Path(__file__).resolve().parents[1] / "configs" / "scenarios" / "demo-park.yaml"


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Factory energy edge agent: polls Modbus and OPC UA equipment and "
        "publishes energy summaries to the park's MQTT broker.",
        epilog="examples:\n"
        "  edge-agent check /etc/edge-agent/site.yaml\n"
        "  edge-agent --log-format json run /etc/edge-agent/site.yaml\n"
        "  edge-agent reload /etc/edge-agent/site.yaml\n"
        "  edge-agent COMMAND --help\n\n"
        "exit codes:\n"
        "  0    ok, also after a graceful stop on SIGINT / SIGTERM\n"
        "  1    run-time failure (logged)\n"
        "  2    configuration or usage error (every problem printed, no traceback)\n"
        "  130  stopped by force: a second signal, or a stop past its 10 s bound",
        formatter_class=raw,
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="json: one JSON object per line, with site/device/unit/address (default text)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="validate a site file and print what will be polled",
        epilog="example:\n  edge-agent check configs/sites/demo-factory.yaml",
        formatter_class=raw,
    )
    check.add_argument("site", type=Path)

    plan = commands.add_parser(
        "plan",
        help="print the Modbus requests planned per device and poll group",
        epilog="example:\n  edge-agent plan configs/sites/demo-factory.yaml",
        formatter_class=raw,
    )
    plan.add_argument("site", type=Path)

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of the site file (or of the payloads)",
        epilog="examples:\n  edge-agent schema > site.schema.json\n  edge-agent schema --payloads",
        formatter_class=raw,
    )
    schema.add_argument(
        "--payloads", action="store_true", help="the schemas of the published MQTT payloads instead"
    )

    run = commands.add_parser(
        "run",
        help="run the agent until SIGINT / SIGTERM",
        epilog="example:\n  MQTT_PASSWORD=... edge-agent run /etc/edge-agent/site.yaml",
        formatter_class=raw,
    )
    run.add_argument("site", type=Path)
    run.add_argument(
        "--no-publish",
        action="store_true",
        help="poll and summarise, but do not connect to the broker",
    )
    run.add_argument(
        "--pid-file",
        type=Path,
        help="where to write the process id for `edge-agent reload` "
        f"(default: {PID_FILE_NAME} beside the outbox)",
    )

    reload = commands.add_parser(
        "reload",
        help="check a site file, then make the running agent apply it (SIGHUP)",
        description="Checks SITE (when given) and sends SIGHUP to the running agent, found "
        "by its pid file. The agent re-reads the file it was started with and applies only "
        "what changed in its devices; an invalid file leaves it as it runs.",
        epilog="examples:\n  edge-agent reload /etc/edge-agent/site.yaml\n"
        "  edge-agent reload --pid-file /var/lib/edge-agent/edge-agent.pid\n"
        "  edge-agent reload --pid 4242",
        formatter_class=raw,
    )
    reload.add_argument(
        "site",
        type=Path,
        nargs="?",
        help="checked first; its outbox's folder holds the pid file (unless given)",
    )
    which = reload.add_mutually_exclusive_group()
    which.add_argument("--pid-file", type=Path, help="the pid file `edge-agent run` wrote")
    which.add_argument("--pid", type=int, help="the agent's process id")

    probe = commands.add_parser(
        "probe",
        help="read a raw register window and print it decoded in every type and byte order",
        epilog="examples:\n"
        "  edge-agent probe --host 192.168.10.21 --unit 1 --table input --address 0 --count 12\n"
        "  edge-agent probe --serial /dev/ttyUSB0 --baudrate 9600 --parity E --unit 3 "
        "--address 3059 --count 4",
        formatter_class=raw,
    )
    where = probe.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", help="a Modbus TCP device, gateway or serial converter")
    where.add_argument("--serial", metavar="PATH", help="a serial port, e.g. /dev/ttyUSB0")
    probe.add_argument("--port", type=int, default=502)
    probe.add_argument(
        "--framing",
        choices=["mbap", "rtu"],
        default="mbap",
        help="rtu for serial-to-Ethernet converters (default mbap)",
    )
    probe.add_argument("--baudrate", type=int, default=9600)
    probe.add_argument("--parity", choices=["N", "E", "O"], default="N")
    probe.add_argument("--stopbits", type=int, choices=[1, 2], default=1)
    probe.add_argument("--unit", type=int, default=1)
    probe.add_argument("--table", choices=[t.value for t in Table], default="holding")
    probe.add_argument("--address", type=int, required=True, help="zero-based")
    probe.add_argument("--count", type=int, default=10)
    probe.add_argument("--timeout", type=float, default=1.0, help="seconds")
    probe.add_argument("--wide", action="store_true", help="also 64-bit values")

    simulate = commands.add_parser(
        "simulate",
        help="run a scenario's simulated day with the real protocol stacks; write a report",
        epilog="examples:\n  edge-agent simulate configs/scenarios/demo-park.yaml\n"
        "  edge-agent simulate configs/scenarios/demo-park.yaml --hours 2 --seed 3\n"
        "  edge-agent simulate configs/scenarios/demo-park.yaml --in-process",
        formatter_class=raw,
    )
    simulate.add_argument("scenario", type=Path, help="a scenario YAML file")
    simulate.add_argument("--hours", type=float, help="override the scenario's duration")
    simulate.add_argument("--seed", type=int, help="override the scenario's seed")
    simulate.add_argument(
        "--out",
        type=Path,
        default=Path("reports"),
        help="folder for metrics.json, series-<factory>.csv and report.html (default reports/)",
    )
    simulate.add_argument(
        "--in-process",
        action="store_true",
        help="run the agents' code with the plant in-process (no sockets, no broker needed): "
        "the same control, many times faster",
    )
    simulate.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the baselines (no control, a classic limiter) and the hindsight bound",
    )

    demo = commands.add_parser(
        "demo",
        help="a simulated park + embedded broker (if none runs) + one agent per factory, live",
        epilog="examples:\n  edge-agent demo\n  edge-agent demo --duration 30\n"
        "  edge-agent demo --site configs/sites/demo-factory.yaml",
        formatter_class=raw,
    )
    demo.add_argument(
        "--scenario",
        type=Path,
        default=DEMO_PARK,
        help="the park to run (default: the three-factory demo park)",
    )
    demo.add_argument(
        "--site",
        type=Path,
        default=None,
        help="run one site file instead, e.g. configs/sites/demo-factory.yaml",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return _command(args)
    finally:
        end_folds()


def _command(args: argparse.Namespace) -> int:
    try:
        match args.command:
            case "check":
                return _check(load_site(args.site), args.site)
            case "plan":
                _print_plan(load_site(args.site))
                return EXIT_OK
            case "schema":
                return _schema(payloads=args.payloads)
            case "run":
                config = load_site(args.site)
                pid_file = args.pid_file or _default_pid_file(config)
                return asyncio.run(
                    _run(
                        config, publish=not args.no_publish, site_file=args.site, pid_file=pid_file
                    )
                )
            case "reload":
                return _reload(args.site, pid_file=args.pid_file, pid=args.pid)
            case "probe":
                return asyncio.run(_probe(args))
            case "simulate":
                return asyncio.run(_simulate(args))
            case "demo":
                from .demo import run_demo, run_park_demo

                if args.site is not None:
                    return asyncio.run(run_demo(args.site, duration_s=args.duration))
                return asyncio.run(run_park_demo(args.scenario, duration_s=args.duration))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except (KeyboardInterrupt, asyncio.CancelledError):
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `edge-agent check ... | head`
        return EXIT_OK
    except Exception:  # logged, in the chosen log format, rather than a bare traceback
        logging.getLogger("edge_agent").critical("edge-agent failed", exc_info=True)
        return EXIT_FAILED
    return EXIT_FAILED  # pragma: no cover


def _check(config: SiteConfig, path: Path) -> int:
    points = sum(len(d.points) for d in config.devices)
    print(
        f"{path}: OK - site {config.site.park}/{config.site.name}, "
        f"{count(len(config.devices), 'device')}, {count(points, 'point')}, "
        f"broker {config.broker.host}:{config.broker.port}, "
        f"summaries every {config.summary.interval_s} s"
    )
    for line, devices in modbus_lines(config):
        where = line.serial_port if line.transport == "serial" else f"{line.host}:{line.port}"
        serial = (
            f" {line.baudrate} {line.bytesize}{line.parity}{line.stopbits}"
            if line.transport == "serial"
            else ""
        )
        print(
            f"\nline {line.name} ({line.transport} {where}{serial}, "
            f"timeout {line.timeout_s:g} s, pause {line.pause_s:g} s)"
        )
        for device in devices:
            _print_device(device)
    for opcua in config.devices:
        if isinstance(opcua, OpcUaDevice):
            security = opcua.security
            print(
                f"\n{opcua.name} (OPC UA {opcua.endpoint}, {security.policy} {security.mode}, "
                f"{opcua.mode} every {opcua.poll_interval_s:g} s)"
            )
            for name, node in opcua.points.items():
                limits = (
                    f" {node.min:g}..{node.max:g}"
                    if (node.min is not None and node.max is not None)
                    else ""
                )
                what = (
                    f"method {node.method}"
                    if node.method
                    else f"writable{limits}"
                    if node.writable
                    else ""
                )
                unit = f" [{node.unit}]" if node.unit else ""
                print(f"    {name:<22} {node.node_id or node.browse_path or '':<34} {what}{unit}")
    print()
    _print_plan(config)
    return EXIT_OK


def _print_device(device: ModbusDevice) -> None:
    model = f", model {device.model}" if device.model else ""
    print(f"  {device.name} (unit {device.unit}{model})")
    for name, point in device.points.items():
        interval = point.poll_interval_s or device.poll_interval_s
        unit = f" [{point.unit}]" if point.unit else ""
        role = f"  role={point.role}" if point.role else ""
        writable = ""
        if point.writable:
            limits = f" {point.min:g}..{point.max:g}" if point.min is not None else ""
            writable = f"  writable{limits}"
        print(
            f"    {name:<22} {point.table.value:<14} {point.address:>5} "
            f"{point.type.value:<8} {point.byte_order.value}  every {interval:g} s"
            f"{unit}{role}{writable}"
        )


def _print_plan(config: SiteConfig) -> None:
    for device in config.devices:
        if isinstance(device, OpcUaDevice):
            print(
                f"{device.name}: OPC UA, one "
                f"{'subscription' if device.mode == 'subscribe' else 'Read call'} per poll "
                f"interval for {count(len(device.points), 'node')}"
            )
            continue
        total_per_s = 0.0
        print(f"{device.name}: planned requests")
        for group, requests in plan_groups(device):
            print(
                f"  every {group.interval_s:g} s: {count(len(group.points), 'point')} in "
                f"{count(len(requests), 'request')}"
            )
            for request in requests:
                print(f"    {request.describe()}")
            total_per_s += len(requests) / group.interval_s
        print(f"  = {total_per_s:.2f} requests/s")


def _schema(*, payloads: bool) -> int:
    if payloads:
        from pydantic import TypeAdapter

        from .northbound.commands import Command, CommandResponse
        from .northbound.payloads import DeviceSummary, SiteSummary, Status

        schemas = {
            m.__name__: m.model_json_schema(by_alias=True)
            for m in (SiteSummary, DeviceSummary, Status, CommandResponse)
        }
        schemas["Command"] = TypeAdapter(Command).json_schema(by_alias=True)
        print(json.dumps(schemas, indent=2))
    else:
        print(json.dumps(SiteConfig.model_json_schema(), indent=2))
    return EXIT_OK


async def _probe(args: argparse.Namespace) -> int:
    from drivers.base import DeviceUnavailable
    from drivers.modbus.client import ModbusExceptionReply, NoAnswer
    from drivers.modbus.config import ModbusLine
    from drivers.modbus.probe import format_window, probe

    table = Table(args.table)
    limit = 2000 if table.is_bits else 125
    if not 1 <= args.count <= limit:
        print(f"--count must be 1 to {limit} for {table.value}", file=sys.stderr)
        return EXIT_CONFIG
    if args.serial:
        line = ModbusLine(
            name="probe",
            transport="serial",
            serial_port=args.serial,
            baudrate=args.baudrate,
            parity=args.parity,
            stopbits=args.stopbits,
            timeout_s=args.timeout,
        )
        where = f"{args.serial} ({args.baudrate} {args.parity} {args.stopbits})"
    else:
        transport: Literal["tcp", "rtu-over-tcp"] = (
            "tcp" if args.framing == "mbap" else "rtu-over-tcp"
        )
        line = ModbusLine(
            name="probe",
            transport=transport,
            host=args.host,
            port=args.port,
            timeout_s=args.timeout,
        )
        where = f"{args.host}:{args.port}"
    try:
        words = await probe(line, args.unit, table, args.address, args.count)
    except (DeviceUnavailable, NoAnswer, ModbusExceptionReply) as exc:
        print(
            f"{where} unit {args.unit} FC{table.function_code:02d} {args.address}+"
            f"{args.count}: {exc}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"{where} unit {args.unit} FC{table.function_code:02d}")
    print(format_window(words, args.address, table, wide=args.wide))
    return EXIT_OK


async def _simulate(args: argparse.Namespace) -> int:
    import time

    from rich.progress import Progress

    from simulators.broker import BrokerUnavailable
    from simulators.park import load_scenario, simulate

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


async def _run(config: SiteConfig, *, publish: bool, site_file: Path, pid_file: Path) -> int:
    from .agent import Agent
    from .supervisor import run_until_signalled

    agent = Agent(config, SystemClock(), publish=publish, site_file=site_file)

    async def main(stop: asyncio.Event) -> None:
        # Written once SIGHUP is handled: a reload sent earlier would end the process.
        with _pid_written(pid_file):
            await agent.run(stop)

    await run_until_signalled(main, reload=agent.reload_requested)
    return EXIT_OK


def _default_pid_file(config: SiteConfig) -> Path:
    """Beside the outbox: the state directory the agent already owns and can write."""
    return config.outbox.path.parent / PID_FILE_NAME


@contextmanager
def _pid_written(path: Path) -> Iterator[None]:
    """The pid file while the agent runs; one that cannot be written is logged, not fatal
    (`edge-agent reload --pid` still works)."""
    log = logging.getLogger("edge_agent")
    pid = str(os.getpid())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(pid + "\n", encoding="ascii")
    except OSError as exc:
        log.warning("cannot write the pid file %s (%s); reload with --pid %s", path, exc, pid)
        yield
        return
    try:
        yield
    finally:
        try:
            if path.read_text(encoding="ascii").strip() == pid:  # not a newer agent's
                path.unlink()
        except OSError:
            pass


def _reload(site: Path | None, *, pid_file: Path | None, pid: int | None) -> int:
    """Check the file, find the agent, send SIGHUP; say what happened."""
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is None:
        print("reload needs SIGHUP, which this platform lacks: restart the agent", file=sys.stderr)
        return EXIT_FAILED
    if site is not None:
        try:
            config = load_site(site)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            print(
                "the agent was not signalled: it keeps its running configuration", file=sys.stderr
            )
            return EXIT_CONFIG
        print(f"{site}: OK")
        pid_file = pid_file or _default_pid_file(config)
    if pid is None:
        if pid_file is None:
            print("reload: give the site file, --pid-file or --pid", file=sys.stderr)
            return EXIT_CONFIG
        try:
            pid = int(pid_file.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            print(
                f"no pid file at {pid_file}: is the agent running (`edge-agent run` writes it)?",
                file=sys.stderr,
            )
            return EXIT_FAILED
        except (OSError, ValueError) as exc:
            print(f"cannot read a process id from {pid_file}: {exc}", file=sys.stderr)
            return EXIT_FAILED
    source = f" from {pid_file}" if pid_file is not None else ""
    problem = _not_an_agent(pid)
    if problem is not None:
        print(f"pid {pid}{source}: {problem}; not signalled", file=sys.stderr)
        return EXIT_FAILED
    try:
        os.kill(pid, hangup)
    except ProcessLookupError:
        print(f"no process {pid}{source}: the agent is not running", file=sys.stderr)
        return EXIT_FAILED
    except PermissionError:
        print(f"not allowed to signal {pid}: run as the agent's user or root", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"sent SIGHUP to edge-agent pid {pid}{source}: it re-reads its site file and logs "
        "what it applied, or why it kept the running configuration"
    )
    return EXIT_OK


def _not_an_agent(pid: int) -> str | None:
    """Why `pid` is not an edge agent, where /proc can tell: SIGHUP would end any other
    process that took over a stale pid file's number."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return (
            None if not Path("/proc/self").exists() else "no such process, the agent is not running"
        )
    except OSError:
        return None
    if b"edge-agent" in cmdline or b"edge_agent" in cmdline:
        return None
    command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return f"it is not an edge agent ({command})"
