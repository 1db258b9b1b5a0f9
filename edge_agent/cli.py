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
from importlib.metadata import entry_points
from pathlib import Path
from typing import Literal, Protocol

from drivers.modbus.planner import Table
from drivers.registry import lines, protocol_of

from .clock import SystemClock
from .config.loader import ConfigError, load_site
from .config.schema import SiteConfig
from .model import count
from .ops.logs import end_folds, setup_logging

__all__ = ["COMMANDS_GROUP", "Command", "main"]

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130
PID_FILE_NAME = "edge-agent.pid"
COMMANDS_GROUP = "edge_agent.commands"
"""The entry-point group of the commands that other packages add under `edge-agent`: the
simulators' `demo` and `simulate` (pyproject.toml), so that the runtime never imports them."""


class Command(Protocol):
    """A command added under `edge-agent` through an entry point of `COMMANDS_GROUP`."""

    help: str
    """One line for `edge-agent --help`."""
    epilog: str
    """Examples for `edge-agent COMMAND --help`."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declares the command's arguments on its own subparser."""

    def run(self, args: argparse.Namespace) -> int:
        """Runs the command; returns the exit code. A `ConfigError` it raises is printed
        and exits 2, as for the built-in commands."""


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

    _add_plugin_commands(commands, raw)
    return parser


def _add_plugin_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    """The commands of `COMMANDS_GROUP`'s entry points, in name order. A built-in command's
    name is never taken over; one that cannot be loaded is named on stderr and left out,
    so that a broken extra never stops `check` or `run`."""
    taken = set(commands.choices)
    for point in sorted(entry_points(group=COMMANDS_GROUP), key=lambda p: p.name):
        if point.name in taken:
            continue
        taken.add(point.name)
        try:
            command: Command = point.load()
        except Exception as exc:  # an import error in another package, say
            print(
                f"edge-agent: command {point.name!r} ({point.value}) left out: {exc}",
                file=sys.stderr,
            )
            continue
        parser = commands.add_parser(
            point.name, help=command.help, epilog=command.epilog, formatter_class=formatter
        )
        command.add_arguments(parser)
        parser.set_defaults(plugin=command)


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
            case _ if getattr(args, "plugin", None) is not None:
                plugin: Command = args.plugin
                return plugin.run(args)
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
    for line in lines(config):
        for text in line.protocol.describe(line.settings, line.devices):
            print(text)
    print()
    _print_plan(config)
    return EXIT_OK


def _print_plan(config: SiteConfig) -> None:
    for device in config.devices:
        for text in protocol_of(device).plan(device):
            print(text)


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
